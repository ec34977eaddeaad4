"""End to end under dag.test(): draft runs on the Kubernetes emulator, then the promotion DAG.

The draft DAG runs the real DraftRunOperator (KubernetesPodOperator) against the emulator in
local-process mode: each run is a local process that reports its usage and checks through
``job_report``. The promotion DAG (DraftRunsSensor -> PromotionOperator) then reads those runs through
the real REST API served in-process, decides, and rewrites the job file.
"""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook
from tests.conftest import load_dag_file
from tests.integration import api_server as api_server_fixture
from tests.integration.test_promotion_operator import asset_events, task_state, xcom

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_sla_promotion.devtools.kube_emulator import KubeEmulator

pytestmark = pytest.mark.integration
api_server = api_server_fixture.api_server
DRAFT_NS = "draft-ingestion-ns"

#: The job's container: sleeps the seconds given as its argument (or exits with code N for "exit:N"),
#: touches some memory, and reports its checks and record counts through job_report.
JOB_CODE = textwrap.dedent(
    """
    import sys, time
    from airflow_sla_promotion import job_report
    arg = sys.argv[1] if len(sys.argv) > 1 else "1"
    if arg.startswith("exit:"):
        print("source unavailable", flush=True)
        sys.exit(int(arg[5:]))
    block = b"x" * (50 * 10**6)
    time.sleep(float(arg))
    job_report.report(
        checks=[{"name": "not_null", "status": "passed"}, {"name": "row_count", "status": "passed"}],
        records_processed=500,
        records_failed=0,
    )
    """
)

DRAFT_DAG = '''
"""Draft DAG of {job_id}: DraftRunOperator on the emulator; the run's conf sets the job's argument."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_sla_promotion.operators.draft_run import DraftRunOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DraftRunOperator(
        job={job_path!r},
        config_file={kubeconfig!r},
        arguments=["{{{{ dag_run.conf.get('arg', '1') }}}}"],
        on_finish_action="keep_pod",
        startup_check_interval_seconds=1,
        poll_interval=0.5,
    )
'''

PROMOTION_DAG = '''
"""Promotion DAG of {job_id}, as the DAG factory builds it."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_sla_promotion.operators.promotion import PromotionOperator
from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    wait = DraftRunsSensor(task_id="wait_for_draft_runs", job={job_path!r}, poke_interval=0.5)
    promote = PromotionOperator(task_id="promote", job={job_path!r})
    wait >> promote
'''


def write_job_file(folder: Path, job_id: str) -> Path:
    now = datetime.now(UTC)
    doc = {
        "job_id": job_id,
        "job_name": f"E2E {job_id}",
        "tenant": "sales",
        "owner": "data@example.com",
        "image": "registry.example.com/ingest/e2e:1.0",
        "cmds": [sys.executable, "-c", JOB_CODE],
        "schedule_config": {"cron": "0 3 * * *"},
        "resource_requirements": {"cpu_cores": 1, "memory_gb": 2, "estimated_runtime_minutes": 1},
        "sla_requirements": {"max_runtime": 5, "success_rate": 0.75},
        # The demo's relaxed criteria: the runs happen within seconds, so no evaluation period.
        "promotion": {"min_evaluation_period_days": 0},
        "status": "draft",
        "draft": {
            "started_at": (now - timedelta(hours=1)).isoformat(),
            "window_ends_at": (now + timedelta(days=1)).isoformat(),
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.yaml"
    path.write_text("# Ingestion job under test; comments survive the rewrite.\n" + yaml.safe_dump(doc))
    return path


def run_draft_runs(dags_folder: Path, job_path: Path, kubeconfig: Path, args: list[str]) -> list[Any]:
    job_id = job_path.stem
    dag_id = f"{job_id}__draft"
    dag_file = dags_folder / f"{dag_id}.py"
    dag_file.write_text(
        DRAFT_DAG.format(job_id=job_id, dag_id=dag_id, job_path=str(job_path), kubeconfig=str(kubeconfig))
    )
    dag = load_dag_file(dag_file, dag_id)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        dag.test(logical_date=start + timedelta(hours=i), run_conf={"arg": arg}) for i, arg in enumerate(args)
    ]


def run_promotion_dag(dags_folder: Path, job_path: Path) -> Any:
    job_id = job_path.stem
    dag_id = f"{job_id}__promotion"
    dag_file = dags_folder / f"{dag_id}.py"
    dag_file.write_text(PROMOTION_DAG.format(job_id=job_id, dag_id=dag_id, job_path=str(job_path)))
    return load_dag_file(dag_file, dag_id).test()


def draft_pods(emulator: KubeEmulator, job_id: str) -> list[str]:
    return [
        pod["metadata"]["name"]
        for pod in emulator.pods(DRAFT_NS)
        if pod["metadata"].get("labels", {}).get("sla-promotion/job-id") == job_id
    ]


@pytest.fixture
def relaxed_criteria(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA", "True")


@pytest.mark.usefixtures("api_server", "relaxed_criteria", "kubernetes_default_connection")
def test_promote_end_to_end(
    dags_folder: Path,
    tmp_path: Path,
    kube_emulator: KubeEmulator,
    kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job_id = "e2e_promote"
    job_path = write_job_file(tmp_path / "jobs", job_id)
    draft_runs = run_draft_runs(dags_folder, job_path, kubeconfig, ["1.0", "1.0", "1.0", "1.0"])
    assert [run.state for run in draft_runs] == ["success"] * 4
    assert len(draft_pods(kube_emulator, job_id)) == 4  # kept by the draft DAG: the promotion cleans up
    capsys.readouterr()

    dag_run = run_promotion_dag(dags_folder, job_path)

    dag_id = f"{job_id}__promotion"
    assert task_state(dag_id, dag_run.run_id, "wait_for_draft_runs") == "success"
    assert xcom(dag_id, dag_run.run_id, "wait_for_draft_runs")["status"] == "criteria_met"
    assert task_state(dag_id, dag_run.run_id, "promote") == "success"
    report = xcom(dag_id, dag_run.run_id, "promote")
    assert report["outcome"]["status"] == "promoted"
    assert report["evaluation_data"]["successful_executions"] == 4
    # Usage measured by the runs themselves reached the decision.
    assert report["evaluation_data"]["avg_memory_utilization"] > 0.04
    assert all(
        report["criteria_results"][name]["passed"]
        for name in ("min_successful_runs", "performance_variance", "sla_compliance", "overall_score")
    )
    adjustments = report["promotion_decision"]["resource_adjustments"]

    # The rewritten file, with its comment and history.
    text = job_path.read_text()
    assert text.startswith("# Ingestion job under test")
    job = yaml.safe_load(text)
    assert (job["status"], job["namespace"]) == ("active", "prod-ingestion-ns")
    for name, change in adjustments.items():
        assert job["resource_requirements"][name] == change["recommended"]
    assert [entry["action"] for entry in job["promotion_history"]] == ["promote"]
    saved = list((job_path.parent / ".history" / job_id).glob("*.yaml"))
    assert len(saved) == 1
    assert yaml.safe_load(saved[0].read_text())["status"] == "draft"

    # The Airflow and Kubernetes side.
    assert report["outcome"]["pending_steps"] == []
    assert draft_pods(kube_emulator, job_id) == []
    assert AirflowApiHook().get_dag(f"{job_id}__draft").is_paused is True  # type: ignore[union-attr]
    assert len(asset_events(f"sla-promotion://jobs/{job_id}/promoted")) == 1

    # The readable table in the task log.
    log = capsys.readouterr().out
    table = log.split("| criterion", 1)[1].split("Decision: promote", 1)[0]
    assert table.count("| PASS") == 6


@pytest.mark.usefixtures("api_server", "relaxed_criteria", "kubernetes_default_connection")
def test_reject_end_to_end(
    dags_folder: Path,
    tmp_path: Path,
    kube_emulator: KubeEmulator,
    kubeconfig: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job_id = "e2e_reject"
    job_path = write_job_file(tmp_path / "jobs", job_id)
    draft_runs = run_draft_runs(dags_folder, job_path, kubeconfig, ["0.1", "exit:3", "2.5", "0.1", "2.0"])
    assert [run.state for run in draft_runs] == ["success", "failed", "success", "success", "success"]
    capsys.readouterr()

    dag_run = run_promotion_dag(dags_folder, job_path)

    dag_id = f"{job_id}__promotion"
    report = xcom(dag_id, dag_run.run_id, "promote")
    assert report["promotion_decision"]["decision"] == "reject"
    assert report["outcome"]["status"] == "rejected"
    assert "performance_variance" in report["promotion_decision"]["failed_criteria"]
    assert report["evaluation_data"]["failed_executions"] == 1
    assert report["feedback_report"]["evaluation_summary"]["status"] == "promotion_rejected"

    job = yaml.safe_load(job_path.read_text())
    assert job["status"] == "promotion_rejected"
    assert "namespace" not in job
    assert (
        job["promotion_feedback"]["evaluation_summary"]["failed_criteria"]
        == report["promotion_decision"]["failed_criteria"]
    )
    assert [entry["action"] for entry in job["promotion_history"]] == ["reject"]
    assert len(list((job_path.parent / ".history" / job_id).glob("*.yaml"))) == 1

    # Nothing production-side happened: pods kept for debugging, draft DAG running, no asset event.
    assert len(draft_pods(kube_emulator, job_id)) == 5
    assert AirflowApiHook().get_dag(f"{job_id}__draft").is_paused is False  # type: ignore[union-attr]
    assert asset_events(f"sla-promotion://jobs/{job_id}/promoted") == []

    log = capsys.readouterr().out
    table = log.split("| criterion", 1)[1].split("Decision: reject", 1)[0]
    assert "| performance_variance" in table
    assert "| FAIL" in table
