"""PromotionOperator's pure parts: joining REST metadata with run records, and the criteria table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_sla_promotion.hooks.airflow_api import ApiDagRun, ApiTaskInstance
from airflow_sla_promotion.operators.promotion import (
    DraftEvidenceError,
    criteria_rows,
    criteria_table,
    join_draft_runs,
)
from airflow_sla_promotion.spec import AllocatedResources, IngestionJob

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
ALLOCATED = AllocatedResources(cpu_cores=1.1, memory_gb=2.2)
JOB = IngestionJob.model_validate(
    {
        "job_id": "orders",
        "job_name": "Orders",
        "tenant": "sales",
        "image": "img:1",
        "schedule_config": {"cron": "0 2 * * *"},
        "resource_requirements": {"cpu_cores": 1, "memory_gb": 2, "estimated_runtime_minutes": 10},
    }
)


def run(i: int, state: str = "success") -> ApiDagRun:
    start = T0 + timedelta(days=i)
    return ApiDagRun(dag_id="orders__draft", run_id=f"r{i}", state=state, run_after=start, start_date=start)


def ti(i: int, state: str | None, minutes: float = 12.0, try_number: int = 1) -> ApiTaskInstance:
    start = T0 + timedelta(days=i, seconds=30)
    return ApiTaskInstance(
        dag_id="orders__draft",
        task_id="draft_run",
        run_id=f"r{i}",
        state=state,
        start_date=start,
        end_date=start + timedelta(minutes=minutes),
        duration=minutes * 60,
        try_number=try_number,
    )


def record(i: int, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "execution_id": f"r{i}",
        "job_id": "orders",
        "status": "completed",
        "created_at": (T0 + timedelta(days=i, minutes=1)).isoformat(),
        "actual_runtime_minutes": 7.5,
        "allocated_resources": {"cpu_cores": 1.1, "memory_gb": 2.2},
        "resource_usage": {"avg_cpu_utilization": 0.8, "peak_memory_usage_gb": 1.5},
    }
    doc.update(fields)
    return doc


def join(runs: list[ApiDagRun], tis: list[ApiTaskInstance], records: dict[str, Any]) -> Any:
    return join_draft_runs(JOB, runs, tis, records, draft_task_id="draft_run", allocated=ALLOCATED)


class TestJoin:
    def test_record_supplies_usage_and_runtime(self) -> None:
        executions, in_flight = join([run(0)], [ti(0, "success", minutes=12)], {"r0": record(0)})
        assert in_flight == []
        (execution,) = executions
        assert execution.status == "completed"
        assert execution.actual_runtime_minutes == 7.5  # the job's own time, not the task's 12 minutes
        assert execution.resource_usage is not None
        assert execution.created_at == T0 + timedelta(minutes=1)

    def test_task_state_overrides_the_record(self) -> None:
        executions, _ = join([run(0, "failed")], [ti(0, "failed")], {"r0": record(0)})
        assert executions[0].status == "failed"
        assert executions[0].failure_reason == "draft task failed"
        executions, _ = join(
            [run(1)], [ti(1, "success", try_number=2)], {"r1": record(1, status="failed", failure_reason="x")}
        )
        assert (executions[0].status, executions[0].failure_reason) == ("completed", None)
        assert executions[0].try_number == 2

    def test_run_that_died_without_a_record_counts_as_failed(self) -> None:
        executions, _ = join([run(0, "failed")], [ti(0, "upstream_failed", minutes=3)], {})
        (execution,) = executions
        assert execution.status == "failed"
        assert execution.failure_reason == "draft task upstream_failed; the run left no record"
        assert execution.created_at == T0 + timedelta(seconds=30)
        assert execution.actual_runtime_minutes == 3.0
        assert execution.resource_usage is None
        assert execution.allocated_resources == ALLOCATED

    def test_finished_run_whose_task_never_ran(self) -> None:
        executions, _ = join([run(0, "failed"), run(1, "success")], [], {})
        assert [e.status for e in executions] == ["failed", "failed"]
        assert executions[0].failure_reason == "no draft task instance; the run left no record"
        assert executions[0].actual_runtime_minutes == 0.0

    def test_successful_task_without_a_record_is_completed_without_usage(self) -> None:
        executions, _ = join([run(0)], [ti(0, "success", minutes=9)], {})
        assert (executions[0].status, executions[0].actual_runtime_minutes) == ("completed", 9.0)
        assert executions[0].resource_usage is None

    def test_runs_in_flight_are_left_out(self) -> None:
        executions, in_flight = join(
            [run(0, "running"), run(1, "queued"), run(2)], [ti(0, "running"), ti(2, "success")], {}
        )
        assert [e.execution_id for e in executions] == ["r2"]
        assert in_flight == ["r0", "r1"]

    def test_invalid_or_foreign_record_is_an_error(self) -> None:
        with pytest.raises(DraftEvidenceError, match="run r0 is not a valid DraftExecution"):
            join([run(0)], [ti(0, "success")], {"r0": {"execution_id": "r0"}})
        with pytest.raises(DraftEvidenceError, match="belongs to job 'customers'"):
            join([run(0)], [ti(0, "success")], {"r0": record(0, job_id="customers")})


RESULTS = {
    "min_successful_runs": {"required": 3, "actual": 4, "passed": True},
    "min_evaluation_period": {"required_days": 3, "actual_days": 2, "passed": False},
    "performance_variance": {"max_allowed": 0.3, "actual": 0.12345, "passed": True},
    "target_namespace": {"requested": "prod", "allowed": ["prod", "prod-b"], "passed": True},
    "overall_status": "failed",
}


def test_criteria_rows() -> None:
    assert criteria_rows(RESULTS) == [
        ("min_successful_runs", "4", ">= 3", "PASS"),
        ("min_evaluation_period", "2", ">= 3", "FAIL"),
        ("performance_variance", "0.1235", "<= 0.3", "PASS"),
        ("target_namespace", "prod", "in prod, prod-b", "PASS"),
    ]


def test_criteria_table_is_aligned() -> None:
    lines = criteria_table(RESULTS).splitlines()
    assert len(lines) == 2 + 4
    assert len({len(line) for line in lines}) == 1
    assert lines[0].split("|")[1].strip() == "criterion"
    assert "| min_evaluation_period | 2 " in lines[3]
