"""DraftRunsSensor and DraftRunsTrigger against the real REST API v2 over runs made by dag.test()."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook
from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor
from airflow_sla_promotion.spec import IngestionJob
from airflow_sla_promotion.triggers.draft_runs import DraftRunsTrigger
from tests.conftest import load_dag_file
from tests.integration import api_server as api_server_fixture
from tests.integration.draft_history import (
    T0,
    job_document,
    run_draft,
    write_job,
    write_scripted_draft_dag,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.api_server import ApiServer

pytestmark = pytest.mark.integration
api_server = api_server_fixture.api_server

ENOUGH = "sensor_enough"  # 3 successes over 3 days (one failure in between)
SHORT = "sensor_short"  # a single successful run


@pytest.fixture(scope="module")
def draft_history(dags_folder: Path, api_server: ApiServer) -> dict[str, list[str]]:
    runs: dict[str, list[str]] = {}
    for job_id, plan in {
        ENOUGH: [(0, None), (1, None), (2, "pod failed"), (3, None)],
        SHORT: [(0, None)],
    }.items():
        dag = load_dag_file(write_scripted_draft_dag(dags_folder, f"{job_id}__draft"), f"{job_id}__draft")
        runs[job_id] = [run_draft(dag, day, conf={"fail": fail} if fail else {}) for day, fail in plan]
    return runs


def job(job_id: str, **draft: Any) -> IngestionJob:
    window = {"started_at": T0.isoformat(), "window_ends_at": (T0 + timedelta(days=7)).isoformat()}
    window.update(draft)
    return IngestionJob.model_validate(job_document(job_id, draft=window))


def trigger(job_id: str, **kwargs: Any) -> DraftRunsTrigger:
    args: dict[str, Any] = {
        "draft_dag_id": f"{job_id}__draft",
        "min_successful_runs": 3,
        "min_evaluation_period_days": 3,
        "started_at": T0,
        "window_ends_at": datetime(2099, 1, 1, tzinfo=UTC),
        "poke_interval": 0.2,
    }
    args.update(kwargs)
    return DraftRunsTrigger(**args)


@pytest.mark.usefixtures("draft_history")
class TestTriggerOverRealApi:
    async def test_criteria_met_event(self) -> None:
        event = await trigger(ENOUGH).run().asend(None)
        assert event.payload["status"] == "criteria_met"
        assert event.payload["successful_runs"] == 3
        assert event.payload["total_runs"] == 4
        assert event.payload["evaluation_period_days"] == 3

    async def test_window_closed_event(self) -> None:
        event = await trigger(SHORT, window_ends_at=T0 + timedelta(days=7)).run().asend(None)
        assert event.payload["status"] == "window_closed"
        assert event.payload["successful_runs"] == 1
        assert event.payload["window_ends_at"] == (T0 + timedelta(days=7)).isoformat()

    async def test_still_waiting_inside_an_open_window(self) -> None:
        progress = await trigger(SHORT).check(AirflowApiHook())
        assert progress.status == "waiting"
        assert not progress.done

    async def test_runs_before_the_window_start_are_ignored(self) -> None:
        progress = await trigger(ENOUGH, started_at=T0 + timedelta(hours=12)).check(AirflowApiHook())
        assert (progress.status, progress.successful_runs, progress.total_runs) == ("waiting", 2, 3)

    async def test_unknown_dag_waits_and_wrong_credentials_end_in_an_error_event(
        self, api_server: ApiServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert (await trigger("no_such_job").check(AirflowApiHook())).total_runs == 0
        conn = (
            f'{{"conn_type": "airflow_api", "host": "{api_server.url}", "login": "admin", "password": "x"}}'
        )
        monkeypatch.setenv("AIRFLOW_CONN_WRONG_PASSWORD", conn)
        event = await trigger(ENOUGH, airflow_conn_id="wrong_password").run().asend(None)
        assert event.payload["status"] == "error"
        assert "401" in event.payload["message"]


@pytest.mark.usefixtures("draft_history")
class TestSensor:
    def test_defers_while_evidence_is_short(self) -> None:
        from airflow.sdk.exceptions import TaskDeferred

        window_end = datetime(2099, 1, 1, tzinfo=UTC)
        sensor = DraftRunsSensor(
            task_id="wait_for_draft_runs",
            job=job(SHORT, window_ends_at=window_end.isoformat()),
            deferrable=True,
            poke_interval=60,
        )
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute({})  # type: ignore[arg-type]
        assert deferred.value.method_name == "execute_complete"
        classpath, kwargs = deferred.value.trigger.serialize()
        assert classpath == "airflow_sla_promotion.triggers.draft_runs.DraftRunsTrigger"
        assert kwargs["draft_dag_id"] == f"{SHORT}__draft"
        assert (kwargs["min_successful_runs"], kwargs["min_evaluation_period_days"]) == (3, 3)
        assert (kwargs["started_at"], kwargs["window_ends_at"]) == (T0, window_end)
        assert kwargs["poke_interval"] == 60
        # No explicit timeout: the deferral lasts at least until the window has closed.
        assert deferred.value.timeout >= window_end - datetime.now(UTC)

    def test_returns_at_once_when_criteria_are_already_met(self) -> None:
        sensor = DraftRunsSensor(task_id="wait", job=job(ENOUGH), deferrable=True)
        result = sensor.execute({})  # type: ignore[arg-type]
        assert result["status"] == "criteria_met"

    def test_poke_mode_reports_a_closed_window_instead_of_failing(self, tmp_path: Path) -> None:
        path = write_job(tmp_path, SHORT)  # window T0 .. T0 + 7 days, long past
        sensor = DraftRunsSensor(task_id="wait", job=path, deferrable=False, poke_interval=0.1)
        result = sensor.execute({})  # type: ignore[arg-type]
        assert result["status"] == "window_closed"
        assert "1/3 successful runs" in result["message"]

    def test_job_criteria_tighten_what_is_enough(self) -> None:
        stricter = IngestionJob.model_validate(
            {**job_document(ENOUGH), "promotion": {"min_successful_runs": 4}}
        )
        sensor = DraftRunsSensor(task_id="wait", job=stricter, deferrable=False)
        progress = sensor.check()
        assert (progress.status, progress.required_successful_runs) == ("window_closed", 4)

    def test_execute_complete(self) -> None:
        from airflow.sdk.exceptions import AirflowException

        sensor = DraftRunsSensor(task_id="wait", job=job(SHORT))
        event = {"status": "window_closed", "message": "closed"}
        assert sensor.execute_complete({}, event) == event  # type: ignore[arg-type]
        with pytest.raises(AirflowException, match="sensor_short__draft failed: HTTPError: boom"):
            sensor.execute_complete({}, {"status": "error", "message": "HTTPError: boom"})  # type: ignore[arg-type]


PROMOTION_DAG = """
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DraftRunsSensor(task_id="wait_for_draft_runs", job={job_path!r}, deferrable=True, poke_interval=0.3)
"""


@pytest.mark.usefixtures("draft_history")
def test_deferred_sensor_under_dag_test(dags_folder: Path, tmp_path: Path) -> None:
    """The sensor defers, the trigger polls the API until the window closes, the task resumes with XCom."""
    window_end = datetime.now(UTC) + timedelta(seconds=2)
    job_path = write_job(
        tmp_path, SHORT, draft={"started_at": T0.isoformat(), "window_ends_at": window_end.isoformat()}
    )
    dag_id = f"{SHORT}__promotion"
    dag_file = dags_folder / f"{dag_id}.py"
    dag_file.write_text(textwrap.dedent(PROMOTION_DAG.format(dag_id=dag_id, job_path=str(job_path))))
    dag_run = load_dag_file(dag_file, dag_id).test()

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dag_run.run_id).one()
        assert ti.state == "success"
        assert ti.next_method is None
        assert ti.try_number == 1  # resumed after the deferral, not retried
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_id, task_ids="wait_for_draft_runs", key="return_value"
            )
        ).first()
        payload = XComModel.deserialize_value(row)
    assert payload["status"] == "window_closed"
    assert payload["successful_runs"] == 1
    assert datetime.now(UTC) >= window_end
