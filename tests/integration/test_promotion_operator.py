"""PromotionOperator under dag.test(): draft history in the DB, read back through the real REST API."""

from __future__ import annotations

import textwrap
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook
from airflow_sla_promotion.operators.promotion import DraftEvidenceError, PromotionOperator
from tests.conftest import load_dag_file
from tests.integration import api_server as api_server_fixture
from tests.integration.draft_history import T0, record, run_draft, write_job, write_scripted_draft_dag

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.api_server import ApiServer

pytestmark = pytest.mark.integration
api_server = api_server_fixture.api_server

PROMOTION_DAG = """
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_sla_promotion.operators.promotion import PromotionOperator
from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    wait = DraftRunsSensor(task_id="wait_for_draft_runs", job={job_path!r}, poke_interval=0.5)
    promote = PromotionOperator(task_id="promote", job={job_path!r}, kubernetes_conn_id=None)
    wait >> promote
"""


def lay_down_draft_runs(dags_folder: Path, job_id: str, plan: list[dict[str, Any]]) -> list[str]:
    """Draft runs of ``job_id`` on the days and with the outcomes of ``plan``."""
    dag_id = f"{job_id}__draft"
    dag = load_dag_file(write_scripted_draft_dag(dags_folder, dag_id), dag_id)
    run_ids = []
    for step in plan:
        day = step["day"]
        conf: dict[str, Any] = {}
        if step.get("fail"):
            conf["fail"] = step["fail"]
        if step.get("record", True):
            run_id_guess = f"manual__{(T0 + timedelta(days=day)).isoformat()}"
            fields = dict(step.get("fields", {}))
            if step.get("fail"):
                fields.setdefault("status", "failed")
                fields.setdefault("failure_reason", step["fail"])
            conf["record"] = record(job_id, run_id_guess, T0 + timedelta(days=day, minutes=1), **fields)
        run_ids.append(run_draft(dag, day, conf=conf))
    return run_ids


def run_promotion(dags_folder: Path, job_path: Path, job_id: str) -> tuple[Any, dict[str, Any]]:
    dag_id = f"{job_id}__promotion"
    dag_file = dags_folder / f"{dag_id}.py"
    dag_file.write_text(textwrap.dedent(PROMOTION_DAG.format(dag_id=dag_id, job_path=str(job_path))))
    dag_run = load_dag_file(dag_file, dag_id).test()
    return dag_run, xcom(dag_id, dag_run.run_id, "promote")


def xcom(dag_id: str, run_id: str, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id, key="return_value")
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def task_state(dag_id: str, run_id: str, task_id: str) -> str | None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        return None if ti.state is None else str(ti.state)


def asset_events(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        return [dict(event.extra or {}) for event in events.filter(AssetModel.uri == uri).all()]


def read_job(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


GOOD_RUN = {"fields": {"actual_runtime_minutes": 8.0}}


@pytest.mark.usefixtures("api_server")
class TestPromotionUnderDagTest:
    def test_promote(self, dags_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        job_id = "promo_ok"
        lay_down_draft_runs(dags_folder, job_id, [{"day": d, **GOOD_RUN} for d in range(4)])
        job_path = write_job(tmp_path / "jobs", job_id)

        dag_run, report = run_promotion(dags_folder, job_path, job_id)

        assert task_state(f"{job_id}__promotion", dag_run.run_id, "promote") == "success"
        assert set(report) >= {
            "job_id",
            "evaluation_data",
            "criteria_results",
            "promotion_decision",
            "outcome",
            "feedback_report",
        }
        assert report["promotion_decision"]["decision"] == "promote"
        assert report["outcome"]["status"] == "promoted"
        assert report["evaluation_data"]["successful_executions"] == 4
        assert report["evaluation_data"]["evaluation_period_days"] == 3
        assert report["feedback_report"] is None
        # The job file was rewritten, with its history.
        job = read_job(job_path)
        assert (job["status"], job["namespace"]) == ("active", "prod-ingestion-ns")
        assert job["promoted_at"]
        assert job["promotion_history"][-1]["action"] == "promote"
        assert list((tmp_path / "jobs" / ".history" / job_id).glob("*.yaml"))
        # Airflow-side steps: draft DAG paused through REST, asset event through the alias outlet.
        assert AirflowApiHook().get_dag(f"{job_id}__draft").is_paused is True  # type: ignore[union-attr]
        events = asset_events(f"sla-promotion://jobs/{job_id}/promoted")
        assert len(events) == 1
        assert events[0]["namespace"] == "prod-ingestion-ns"
        assert report["outcome"]["steps"]["asset_event"] == "done"
        # The readable table in the task log.
        out = capsys.readouterr().out
        assert "| criterion" in out
        for criterion in ("min_successful_runs", "min_evaluation_period", "performance_variance"):
            assert f"| {criterion}" in out
        assert "FAIL" not in out.split("Decision: promote")[0].split("| criterion")[-1]

    def test_reject(self, dags_folder: Path, tmp_path: Path) -> None:
        job_id = "promo_bad"
        plan = [
            {"day": 0, "fields": {"actual_runtime_minutes": 4.0}},
            {"day": 1, "fields": {"actual_runtime_minutes": 28.0}},
            {"day": 2, "fail": "OOMKilled", "record": False},  # died without a record
            {"day": 3, "fields": {"actual_runtime_minutes": 6.0}},
            {"day": 4, "fields": {"actual_runtime_minutes": 26.0}},
        ]
        lay_down_draft_runs(dags_folder, job_id, plan)
        job_path = write_job(tmp_path / "jobs", job_id)

        dag_run, report = run_promotion(dags_folder, job_path, job_id)

        assert task_state(f"{job_id}__promotion", dag_run.run_id, "promote") == "success"
        assert report["promotion_decision"]["decision"] == "reject"
        assert report["outcome"]["status"] == "rejected"
        assert "performance_variance" in report["promotion_decision"]["failed_criteria"]
        assert report["evaluation_data"]["failed_executions"] == 1
        assert report["feedback_report"]
        job = read_job(job_path)
        assert job["status"] == "promotion_rejected"
        assert job["promotion_feedback"]
        assert "namespace" not in job
        assert job["promotion_history"][-1]["action"] == "reject"
        assert asset_events(f"sla-promotion://jobs/{job_id}/promoted") == []
        assert AirflowApiHook().get_dag(f"{job_id}__draft").is_paused is False  # type: ignore[union-attr]

    def test_short_evidence_extends_the_window(self, dags_folder: Path, tmp_path: Path) -> None:
        job_id = "promo_short"
        lay_down_draft_runs(dags_folder, job_id, [{"day": 0, **GOOD_RUN}, {"day": 1, **GOOD_RUN}])
        job_path = write_job(tmp_path / "jobs", job_id)

        _, report = run_promotion(dags_folder, job_path, job_id)

        assert report["promotion_decision"]["decision"] == "reject"
        assert set(report["promotion_decision"]["failed_criteria"]) == {
            "min_successful_runs",
            "min_evaluation_period",
        }
        assert report["outcome"]["status"] == "extended"
        job = read_job(job_path)
        assert job["status"] == "draft"
        assert len(job["draft"]["extensions"]) == 1


@pytest.mark.usefixtures("api_server")
def test_unreadable_metadata_never_promotes(dags_folder: Path, tmp_path: Path) -> None:
    """A failing REST API fails the task with a clear error; the job file is left as it was."""
    job_id = "promo_unreadable"
    lay_down_draft_runs(dags_folder, job_id, [{"day": d, **GOOD_RUN} for d in range(4)])
    job_path = write_job(tmp_path / "jobs", job_id)
    before = job_path.read_bytes()
    operator = PromotionOperator(task_id="promote", job=job_path, kubernetes_conn_id=None)

    class BrokenXComHook(AirflowApiHook):
        def get_xcom_value(self, *args: Any, **kwargs: Any) -> Any:
            from airflow_sla_promotion.hooks.airflow_api import AirflowApiError

            raise AirflowApiError("GET .../xcomEntries/draft_execution failed after 4 attempt(s): HTTP 503")

    operator.hook = BrokenXComHook(retry_backoff=0)
    with pytest.raises(DraftEvidenceError, match="cannot read the draft_execution record of run"):
        operator.execute({})  # type: ignore[arg-type]
    assert job_path.read_bytes() == before


APPROVAL_DAG = """
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_sla_promotion.operators.promotion import PromotionOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    PromotionOperator(task_id="promote", job={job_path!r}, kubernetes_conn_id=None, require_approval=True)
"""


class Approver(threading.Thread):
    """A person answering the Human-in-the-loop request through the REST API (the UI does the same)."""

    def __init__(self, server: ApiServer, dag_id: str, choice: str) -> None:
        super().__init__(daemon=True)
        self.server, self.dag_id, self.choice = server, dag_id, choice
        self.request: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.server.client() as client:
                deadline = time.monotonic() + 60
                while self.request is None and time.monotonic() < deadline:
                    found = client.get(f"/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails").json()
                    pending = [d for d in found.get("hitl_details", []) if not d["response_received"]]
                    if pending:
                        self.request = pending[0]
                    else:
                        time.sleep(0.3)
                assert self.request is not None, "no approval was requested"
                run_id = self.request["task_instance"]["dag_run_id"]
                answer = client.patch(
                    f"/api/v2/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/promote/-1/hitlDetails",
                    json={"chosen_options": [self.choice]},
                )
                answer.raise_for_status()
        except BaseException as error:
            self.error = error


def run_with_approver(
    dags_folder: Path, api_server: ApiServer, job_path: Path, job_id: str, choice: str
) -> tuple[Any, dict[str, Any], Approver]:
    dag_id = f"{job_id}__promotion"
    dag_file = dags_folder / f"{dag_id}.py"
    dag_file.write_text(textwrap.dedent(APPROVAL_DAG.format(dag_id=dag_id, job_path=str(job_path))))
    dag = load_dag_file(dag_file, dag_id)
    approver = Approver(api_server, dag_id, choice)
    approver.start()
    dag_run = dag.test()
    approver.join(timeout=30)
    assert approver.error is None, approver.error
    return dag_run, xcom(dag_id, dag_run.run_id, "promote"), approver


class TestApproval:
    def test_nothing_is_rewritten_before_approval_then_the_decision_is_applied(
        self, dags_folder: Path, tmp_path: Path, api_server: ApiServer
    ) -> None:
        job_id = "promo_approved"
        lay_down_draft_runs(dags_folder, job_id, [{"day": d, **GOOD_RUN} for d in range(4)])
        job_path = write_job(tmp_path / "jobs", job_id)

        dag_run, report, approver = run_with_approver(
            dags_folder, api_server, job_path, job_id, "Apply decision"
        )

        assert approver.request is not None
        assert approver.request["subject"] == f"Promote ingestion job {job_id}?"
        assert "| min_successful_runs" in approver.request["body"]
        assert approver.request["options"] == ["Apply decision", "Do not apply"]
        assert report["outcome"]["status"] == "promoted"
        job = read_job(job_path)
        assert job["status"] == "active"
        assert "approved by" in job["promotion_history"][-1]["reason"]

    def test_declined_decision_changes_nothing(
        self, dags_folder: Path, tmp_path: Path, api_server: ApiServer
    ) -> None:
        job_id = "promo_declined"
        lay_down_draft_runs(dags_folder, job_id, [{"day": d, **GOOD_RUN} for d in range(4)])
        job_path = write_job(tmp_path / "jobs", job_id)
        before = job_path.read_bytes()

        dag_run, report, _ = run_with_approver(dags_folder, api_server, job_path, job_id, "Do not apply")

        assert task_state(f"{job_id}__promotion", dag_run.run_id, "promote") == "success"
        assert report["promotion_decision"]["decision"] == "promote"
        assert report["outcome"]["status"] == "not_approved"
        assert job_path.read_bytes() == before
        assert asset_events(f"sla-promotion://jobs/{job_id}/promoted") == []
