"""DraftRunsTrigger and the draft-evidence assessment it shares with DraftRunsSensor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_sla_promotion.hooks.airflow_api import ApiDagRun, ApiTaskInstance
from airflow_sla_promotion.policy.evidence import RunEvidence
from airflow_sla_promotion.triggers.draft_runs import (
    DraftRunsTrigger,
    assess_draft_runs,
    draft_run_evidence,
)

if TYPE_CHECKING:
    import pytest

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def run(i: int, state: str = "success", start: datetime | None = None) -> ApiDagRun:
    when = T0 + timedelta(days=i)
    return ApiDagRun(dag_id="j__draft", run_id=f"r{i}", state=state, run_after=when, start_date=start)


def ti(i: int, state: str | None, start: datetime | None, task_id: str = "draft_run") -> ApiTaskInstance:
    return ApiTaskInstance(dag_id="j__draft", task_id=task_id, run_id=f"r{i}", state=state, start_date=start)


def assess(evidence: list[RunEvidence], **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "min_successful_runs": 3,
        "min_evaluation_period_days": 2,
        "started_at": None,
        "window_ends_at": None,
        "test_execution_days": 7,
        "now": T0 + timedelta(days=1),
    }
    args.update(kwargs)
    return assess_draft_runs(evidence, **args)


class TestEvidenceFromApi:
    def test_task_instance_is_the_truth_for_start_and_outcome(self) -> None:
        runs = [run(0, "failed"), run(1, "success"), run(2, "success")]
        tis = [
            ti(
                0, "success", T0 + timedelta(minutes=3)
            ),  # run state says failed (a later task), draft_run succeeded
            ti(1, "failed", T0 + timedelta(days=1, minutes=5)),
            ti(2, "success", T0 + timedelta(days=2, minutes=1)),
            ti(2, "success", T0, task_id="other_task"),
        ]
        evidence = draft_run_evidence(runs, tis, "draft_run")
        assert evidence == [
            RunEvidence(T0 + timedelta(minutes=3), True),
            RunEvidence(T0 + timedelta(days=1, minutes=5), False),
            RunEvidence(T0 + timedelta(days=2, minutes=1), True),
        ]

    def test_runs_in_flight_are_left_out_and_dead_runs_count_as_failed(self) -> None:
        runs = [run(0, "running"), run(1, "queued"), run(2, "failed", start=T0 + timedelta(days=2)), run(3)]
        tis = [ti(0, "running", T0), ti(1, None, None), ti(3, "removed", None)]
        evidence = draft_run_evidence(runs, tis, "draft_run")
        # r2 has no task instance, r3's draft task never ran: both failed; r3 falls back to run_after.
        assert evidence == [
            RunEvidence(T0 + timedelta(days=2), False),
            RunEvidence(T0 + timedelta(days=3), False),
        ]


class TestAssessment:
    def test_criteria_met_needs_runs_and_period(self) -> None:
        three_in_a_day = [RunEvidence(T0 + timedelta(hours=h), True) for h in (0, 4, 8)]
        assert assess(three_in_a_day).status == "waiting"
        spread = [RunEvidence(T0 + timedelta(days=d), True) for d in (0, 1, 2)]
        progress = assess(spread)
        assert progress.status == "criteria_met"
        assert progress.done
        assert (progress.successful_runs, progress.evaluation_period_days) == (3, 2)

    def test_failed_runs_extend_the_period_but_are_not_successes(self) -> None:
        evidence = [
            RunEvidence(T0, True),
            RunEvidence(T0 + timedelta(hours=1), True),
            RunEvidence(T0 + timedelta(hours=2), True),
            RunEvidence(T0 + timedelta(days=2), False),
        ]
        progress = assess(evidence)
        assert progress.status == "criteria_met"
        assert progress.total_runs == 4
        assert assess(evidence[1:]).status == "waiting"

    def test_runs_before_the_window_start_do_not_count(self) -> None:
        spread = [RunEvidence(T0 + timedelta(days=d), True) for d in (0, 1, 2)]
        progress = assess(spread, started_at=T0 + timedelta(hours=1))
        assert progress.status == "waiting"
        assert progress.successful_runs == 2

    def test_window_closed_when_now_passes_its_end(self) -> None:
        evidence = [RunEvidence(T0, True)]
        end = T0 + timedelta(days=3)
        assert assess(evidence, window_ends_at=end, now=end - timedelta(seconds=1)).status == "waiting"
        closed = assess(evidence, window_ends_at=end, now=end)
        assert closed.status == "window_closed"
        assert closed.window_ends_at == end.isoformat()
        assert "1/3 successful runs" in closed.message

    def test_criteria_met_wins_over_a_closed_window(self) -> None:
        spread = [RunEvidence(T0 + timedelta(days=d), True) for d in (0, 1, 2)]
        assert assess(spread, window_ends_at=T0, now=T0 + timedelta(days=9)).status == "criteria_met"

    def test_window_end_derived_from_start_or_first_run(self) -> None:
        evidence = [RunEvidence(T0 + timedelta(days=1), True)]
        from_start = assess(evidence, started_at=T0, test_execution_days=4, now=T0 + timedelta(days=4))
        assert from_start.status == "window_closed"
        assert from_start.window_ends_at == (T0 + timedelta(days=4)).isoformat()
        from_first_run = assess(evidence, test_execution_days=4, now=T0 + timedelta(days=4))
        assert from_first_run.status == "waiting"
        assert from_first_run.window_ends_at == (T0 + timedelta(days=5)).isoformat()
        nothing = assess([], now=T0 + timedelta(days=400))
        assert nothing.status == "waiting"
        assert nothing.window_ends_at is None


class TestTrigger:
    def trigger(self, **kwargs: Any) -> DraftRunsTrigger:
        args: dict[str, Any] = {
            "draft_dag_id": "orders__draft",
            "min_successful_runs": 3,
            "min_evaluation_period_days": 3,
            "started_at": T0,
            "window_ends_at": T0 + timedelta(days=7),
            "test_execution_days": 7,
            "poke_interval": 0.01,
        }
        args.update(kwargs)
        return DraftRunsTrigger(**args)

    def test_serialize_round_trip_is_exact(self) -> None:
        from airflow.sdk.module_loading import import_string

        original = self.trigger(airflow_conn_id="api", draft_task_id="job", max_runs=77)
        classpath, kwargs = original.serialize()
        assert classpath == "airflow_sla_promotion.triggers.draft_runs.DraftRunsTrigger"
        rebuilt = import_string(classpath)(**kwargs)
        assert rebuilt.serialize() == (classpath, kwargs)
        assert set(kwargs) == {
            "draft_dag_id",
            "draft_task_id",
            "min_successful_runs",
            "min_evaluation_period_days",
            "started_at",
            "window_ends_at",
            "test_execution_days",
            "airflow_conn_id",
            "poke_interval",
            "max_runs",
        }

    def test_serialized_kwargs_survive_airflow_serde(self) -> None:
        from airflow.serialization.serialized_objects import BaseSerialization

        classpath, kwargs = self.trigger().serialize()
        restored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
        assert DraftRunsTrigger(**restored).serialize() == (classpath, kwargs)

    async def test_unreadable_api_gives_an_error_event(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_API", raising=False)
        events = [event async for event in self.trigger(airflow_conn_id="no_such_api").run()]
        assert len(events) == 1
        assert events[0].payload["status"] == "error"
        assert "no_such_api" in events[0].payload["message"]
