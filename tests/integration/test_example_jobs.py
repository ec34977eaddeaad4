"""The example jobs for real: their draft DAGs run under dag.test() on the emulator's local processes.

Each example's draft DAG, as the factory builds it, runs three times. The pods run the example's own
command (``python -m sla_promotion_examples...``) as local processes, which load real data into
SQLite and report through ``job_report``. The records DraftRunOperator leaves in the metadata DB
then go through the promotion decision, which must come out as each example's YAML promises.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_sla_promotion.config_store import load_job
from airflow_sla_promotion.policy.decision import PromotionDecisionEngine
from airflow_sla_promotion.spec import DraftExecution
from tests.conftest import load_dag_file

if TYPE_CHECKING:
    from airflow_sla_promotion.devtools.kube_emulator import KubeEmulator
    from airflow_sla_promotion.spec import IngestionJob, PromotionEvaluation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ingestion"
RUNS_PER_JOB = 3

DAG_FILE = '''
"""The example jobs' DAGs as the factory builds them, pointed at the test's Kubernetes emulator."""
from __future__ import annotations

from airflow_sla_promotion.config import ProviderSettings
from airflow_sla_promotion.dag_factory import build_dags

globals().update(
    build_dags(
        {jobs!r},
        settings=ProviderSettings(allow_relaxed_criteria=True),
        pod_kwargs={{"config_file": {kubeconfig!r}, "startup_check_interval_seconds": 1, "poll_interval": 0.5}},
    )
)
'''


@pytest.fixture
def example_pods_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What docs/example-jobs.md asks of the emulator's environment; returns the examples' data folder.

    The emulator starts pods with its own environment plus the container's ``env``: ``python`` must
    be this interpreter (the provider's ``job_report`` is importable there) and ``examples/ingestion``
    must be on ``PYTHONPATH``.
    """
    data = tmp_path / "example-data"
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("SLA_PROMOTION_EXAMPLES_DATA_DIR", str(data))
    return data


def run_draft_dag(
    job_id: str, *, dags_folder: Path, jobs: Path, kubeconfig: Path, runs: int
) -> list[DraftExecution]:
    """Run ``<job_id>__draft`` ``runs`` times with dag.test(); return the records from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag_file = dags_folder / f"example_jobs_{job_id}.py"
    dag_file.write_text(DAG_FILE.format(jobs=str(jobs), kubeconfig=str(kubeconfig)))
    dag_id = f"{job_id}__draft"
    try:
        dag = load_dag_file(dag_file, dag_id)
        start = datetime(2026, 3, 1, tzinfo=UTC)
        dag_runs = [dag.test(logical_date=start + run * dag.timetable.delta) for run in range(runs)]
    finally:
        dag_file.unlink()

    records = []
    with create_session() as session:
        for dag_run in dag_runs:
            assert dag_run.state == "success", f"{dag_id} run {dag_run.run_id} ended {dag_run.state}"
            row = session.scalars(
                XComModel.get_many(
                    run_id=dag_run.run_id, key="draft_execution", dag_ids=dag_id, task_ids="draft_run"
                )
            ).one()
            records.append(DraftExecution.model_validate(XComModel.deserialize_value(row)))
    return records


def decide(job: IngestionJob, records: list[DraftExecution]) -> PromotionEvaluation:
    return PromotionDecisionEngine().evaluate_promotion_eligibility(job, records, now=datetime.now(UTC))


@pytest.fixture
def example_jobs(tmp_path: Path) -> Path:
    """A copy of the example job files (nothing here rewrites them, but the tracked files stay untouched)."""
    jobs = tmp_path / "jobs"
    shutil.copytree(REPO / "dags" / "jobs", jobs)
    return jobs


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


@pytest.mark.parametrize("job_id", sorted(PROMISES))
def test_example_job_runs_lead_to_the_decision_its_file_promises(
    job_id: str,
    airflow_db: Path,
    dags_folder: Path,
    kube_emulator: KubeEmulator,
    kubeconfig: Path,
    example_jobs: Path,
    example_pods_env: Path,
) -> None:
    job = load_job(example_jobs / f"{job_id}.yaml", context={"allow_relaxed_criteria": True})

    records = run_draft_dag(
        job_id, dags_folder=dags_folder, jobs=example_jobs, kubeconfig=kubeconfig, runs=RUNS_PER_JOB
    )

    promise = PROMISES[job_id]
    assert [record.status for record in records] == ["completed"] * RUNS_PER_JOB
    for record in records:
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

    evaluation = decide(job, records)

    assert evaluation.promotion_decision.decision == promise["decision"]
    assert evaluation.promotion_decision.failed_criteria == promise["failed_criteria"]
    if promise["decision"] == "promote":
        assert evaluation.promotion_decision.target_namespace == "prod-ingestion-ns"
        assert evaluation.feedback_report is None
    else:
        feedback = evaluation.feedback_report
        assert feedback is not None
        (finding,) = feedback["detailed_recommendations"]
        assert finding["criterion"] == "performance_variance"
        assert finding["measured"] > finding["threshold"] == job.criteria().max_performance_variance
