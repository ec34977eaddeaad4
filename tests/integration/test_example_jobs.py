"""The example jobs for real: draft runs on the emulator's local processes, then the promotion, under dag.test().

For each example, the DAGs the factory builds from a copy of ``dags/jobs`` run as Airflow would run
them: the draft DAG three times (each run a local process executing the example's own command,
``python -m sla_promotion_examples...``, which loads real data into SQLite and reports through
``job_report``), then the promotion DAG (``DraftRunsSensor`` -> ``PromotionOperator``, reading the runs
through the in-process REST API). The records, the policy's decision, the promotion report, the
rewritten job file and the DAGs the factory builds from it must all say what the example promises.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_sla_promotion.config_store import load_job
from airflow_sla_promotion.policy.decision import PromotionDecisionEngine
from airflow_sla_promotion.spec import DraftExecution
from tests.conftest import load_dag_file
from tests.integration import api_server as api_server_fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration
api_server = api_server_fixture.api_server

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ingestion"
RUNS_PER_JOB = 3

DAG_FILE = '''
"""The example jobs' DAGs as the factory builds them, pointed at the test's Kubernetes emulator."""
from __future__ import annotations

from airflow_sla_promotion.dag_factory import build_dags

globals().update(
    build_dags(
        {jobs!r},
        pod_kwargs={{"config_file": {kubeconfig!r}, "startup_check_interval_seconds": 1, "poll_interval": 0.5}},
    )
)
'''

#: What each example's file promises: its checks (every run), rejected rows per run, and the decision.
PROMISES: dict[str, dict[str, Any]] = {
    "orders_hourly": {
        "checks": dict.fromkeys(
            ("batch_not_empty", "batch_reconciles", "order_id_unique", "amount_positive", "currency_known"),
            "passed",
        ),
        "records_failed": 1,
        "decision": "promote",
        "failed_criteria": [],
    },
    "customers_daily": {
        "checks": {
            "customer_id_unique": "passed",
            "email_present": "warning",
            "country_code_valid": "passed",
            "row_count_stable": "passed",
        },
        "records_failed": 1,
        "decision": "promote",
        "failed_criteria": [],
    },
    "clickstream_sessions": {
        "checks": dict.fromkeys(
            ("events_received", "session_id_unique", "clicks_reconcile", "session_span_valid"), "passed"
        ),
        "records_failed": 0,
        "decision": "reject",
        "failed_criteria": ["performance_variance"],
    },
}


@pytest.fixture
def example_pods_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What docs/example-jobs.md asks of the emulator's environment; returns the examples' data folder.

    The emulator starts pods with its own environment plus the container's ``env``: ``python`` must
    be this interpreter (the provider's ``job_report`` is importable there) and ``examples/ingestion``
    must be on ``PYTHONPATH``.
    """
    data = tmp_path / "example-data"
    # As in the demo: the examples relax min_evaluation_period_days so three quick runs can decide.
    monkeypatch.setenv("AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA", "True")
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("SLA_PROMOTION_EXAMPLES_DATA_DIR", str(data))
    return data


@pytest.fixture
def example_jobs(tmp_path: Path) -> Path:
    """A copy of the example job files: the promotion rewrites them, the tracked files stay as they are."""
    jobs = tmp_path / "jobs"
    shutil.copytree(REPO / "dags" / "jobs", jobs)
    return jobs


@pytest.fixture
def example_dag_file(
    request: pytest.FixtureRequest, dags_folder: Path, example_jobs: Path, kubeconfig: Path
) -> Iterator[Path]:
    """The factory's DAG file for the copied jobs, in the DAGs folder (where dag.test() needs it)."""
    path = dags_folder / f"example_jobs_{request.node.callspec.id}.py"
    path.write_text(DAG_FILE.format(jobs=str(example_jobs), kubeconfig=str(kubeconfig)))
    yield path
    path.unlink()


def xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run_id, key=key, dag_ids=dag_id, task_ids=task_id)
        ).one()
        return XComModel.deserialize_value(row)


def dag_ids_of(dag_file: Path, job_id: str) -> set[str]:
    """The DAG ids the DAG file has for one job (the folder holds the other examples too)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    return {dag_id for dag_id in bag.dags if dag_id == job_id or dag_id.startswith(f"{job_id}__")}


@pytest.mark.usefixtures("airflow_db", "api_server", "kube_emulator")
@pytest.mark.parametrize("job_id", sorted(PROMISES))
def test_example_job_goes_from_draft_runs_to_the_outcome_its_file_promises(
    job_id: str, example_dag_file: Path, example_jobs: Path, example_pods_env: Path
) -> None:
    promise = PROMISES[job_id]
    job_file = example_jobs / f"{job_id}.yaml"
    job = load_job(job_file, context={"allow_relaxed_criteria": True})
    assert dag_ids_of(example_dag_file, job_id) == {f"{job_id}__draft", f"{job_id}__promotion"}

    # Draft runs: the factory's draft DAG, as the scheduler would run it on its test interval.
    draft = load_dag_file(example_dag_file, f"{job_id}__draft")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    draft_runs = [draft.test(logical_date=start + run * draft.timetable.delta) for run in range(RUNS_PER_JOB)]
    assert [run.state for run in draft_runs] == ["success"] * RUNS_PER_JOB
    records = [
        DraftExecution.model_validate(xcom(draft.dag_id, run.run_id, "draft_run", "draft_execution"))
        for run in draft_runs
    ]
    for record in records:
        assert record.status == "completed"
        assert record.pod_namespace == "draft-ingestion-ns"
        assert record.resource_usage is not None, "the job's own usage report did not arrive"
        assert record.data_quality_results is not None
        assert {check.name: check.status for check in record.data_quality_results.checks} == promise["checks"]
        assert record.records_processed
        assert record.records_failed == promise["records_failed"]
        assert record.data_freshness_minutes is not None
        assert record.data_freshness_minutes < 60
    # The pods wrote real data where the docs say: one SQLite warehouse per job.
    assert (example_pods_env / job_id / "warehouse.db").stat().st_size > 0

    # The policy on these records alone...
    evaluation = PromotionDecisionEngine().evaluate_promotion_eligibility(job, records, now=datetime.now(UTC))
    assert evaluation.promotion_decision.decision == promise["decision"]
    assert evaluation.promotion_decision.failed_criteria == promise["failed_criteria"]

    # ...and the factory's promotion DAG, reading the same runs through the REST API, agree.
    promotion = load_dag_file(example_dag_file, f"{job_id}__promotion")
    promotion_run = promotion.test()
    assert promotion_run.state == "success"
    report = xcom(promotion.dag_id, promotion_run.run_id, "promote", "return_value")
    assert report["promotion_decision"]["decision"] == promise["decision"]
    assert report["promotion_decision"]["failed_criteria"] == promise["failed_criteria"]
    assert report["evaluation_data"]["successful_executions"] == RUNS_PER_JOB

    rewritten = yaml.safe_load(job_file.read_text())
    if promise["decision"] == "promote":
        assert report["outcome"]["status"] == "promoted"
        assert (rewritten["status"], rewritten["namespace"]) == ("active", "prod-ingestion-ns")
        # The factory now builds the production DAG from the rewritten file, and only that.
        assert dag_ids_of(example_dag_file, job_id) == {job_id}
        production = load_dag_file(example_dag_file, job_id)
        run_task = production.task_dict["run"]
        assert run_task.namespace == "prod-ingestion-ns"
        assert production.is_paused_upon_creation is False
        assert run_task.container_resources.requests["memory"] != "2Gi"  # right-sized, no draft floor
    else:
        assert report["outcome"]["status"] == "rejected"
        assert rewritten["status"] == "promotion_rejected"
        (finding,) = rewritten["promotion_feedback"]["detailed_recommendations"]
        assert finding["criterion"] == "performance_variance"
        assert finding["measured"] > finding["threshold"] == job.criteria().max_performance_variance
        # A rejected job has no DAGs any more.
        assert dag_ids_of(example_dag_file, job_id) == set()
