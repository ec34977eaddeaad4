"""One promote and one reject through a real airflow standalone: scheduler, triggerer, dag-processor, api-server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_sla_promotion.devtools.stack import promotion_dag_id, run_promotion_flow
from airflow_sla_promotion.spec import DEFAULT_TARGET_NAMESPACE, IngestionJob

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_sla_promotion.devtools.stack import AirflowStack, JobOutcome

pytestmark = pytest.mark.e2e

PROMOTED = "orders_hourly"
REJECTED = "clickstream_sessions"
FIVE_CRITERIA = {
    "min_successful_runs",
    "min_evaluation_period",
    "performance_variance",
    "sla_compliance",
    "overall_score",
}
REPORT_KEYS = {
    "job_id",
    "evaluation_data",
    "criteria_results",
    "promotion_decision",
    "outcome",
    "feedback_report",
}


@pytest.fixture(scope="module")
def flow(standalone_factory: Any) -> tuple[AirflowStack, Path, dict[str, JobOutcome]]:
    stack, jobs_folder = standalone_factory([PROMOTED, REJECTED])
    outcomes = run_promotion_flow(stack, [PROMOTED, REJECTED], draft_runs=3)
    return stack, jobs_folder, outcomes


def _job_file(jobs_folder: Path, job_id: str) -> IngestionJob:
    data = yaml.safe_load((jobs_folder / f"{job_id}.yaml").read_text(encoding="utf-8"))
    return IngestionJob.model_validate(data, context={"allow_relaxed_criteria": True})


def test_every_draft_and_promotion_run_succeeded(
    flow: tuple[AirflowStack, Path, dict[str, JobOutcome]],
) -> None:
    _, _, outcomes = flow
    for outcome in outcomes.values():
        assert list(outcome.draft_runs.values()) == ["success"] * 3, outcome.draft_runs
        assert outcome.promotion_state == "success"


def test_promoted_job_report_and_rewritten_file(
    flow: tuple[AirflowStack, Path, dict[str, JobOutcome]],
) -> None:
    _, jobs_folder, outcomes = flow
    report = outcomes[PROMOTED].report
    assert report is not None
    assert set(report) >= REPORT_KEYS
    assert report["job_id"] == PROMOTED
    assert report["outcome"]["status"] == "promoted"
    assert report["promotion_decision"]["decision"] == "promote"
    assert report["promotion_decision"]["failed_criteria"] == []
    assert report["promotion_decision"]["target_namespace"] == DEFAULT_TARGET_NAMESPACE

    job = _job_file(jobs_folder, PROMOTED)
    assert job.status == "active"
    assert job.namespace == DEFAULT_TARGET_NAMESPACE
    assert job.promoted_at is not None
    assert job.promotion_history, "a promotion leaves an entry in the job file's history"


def test_rejected_job_report_and_rewritten_file(
    flow: tuple[AirflowStack, Path, dict[str, JobOutcome]],
) -> None:
    _, jobs_folder, outcomes = flow
    report = outcomes[REJECTED].report
    assert report is not None
    assert set(report) >= REPORT_KEYS
    assert report["outcome"]["status"] == "rejected"
    assert report["promotion_decision"]["decision"] == "reject"
    assert "performance_variance" in report["promotion_decision"]["failed_criteria"]
    assert report["feedback_report"]

    job = _job_file(jobs_folder, REJECTED)
    assert job.status == "promotion_rejected"
    assert job.promotion_feedback
    assert job.namespace != DEFAULT_TARGET_NAMESPACE


def test_production_dag_appears_unpaused(flow: tuple[AirflowStack, Path, dict[str, JobOutcome]]) -> None:
    stack, _, _ = flow
    records = stack.client.wait_for_dags([PROMOTED], timeout=120, logs=stack.logs)
    assert records[PROMOTED]["is_paused"] is False
    assert stack.client.get_dag(REJECTED) is None


def test_promotion_log_holds_the_criteria_table(
    flow: tuple[AirflowStack, Path, dict[str, JobOutcome]],
) -> None:
    stack, _, outcomes = flow
    for job_id in (PROMOTED, REJECTED):
        outcome = outcomes[job_id]
        assert outcome.report is not None
        assert outcome.promotion_run_id is not None
        log = stack.client.task_log(promotion_dag_id(job_id), outcome.promotion_run_id, "promote")
        results = {
            name: result
            for name, result in outcome.report["criteria_results"].items()
            if isinstance(result, dict)
        }
        assert set(results) >= FIVE_CRITERIA
        for name, result in results.items():
            rows = [line for line in log.splitlines() if line.startswith(f"| {name} ")]
            assert len(rows) == 1, f"no table row for criterion {name} in the promote task's log:\n{log}"
            assert ("PASS" in rows[0]) is bool(result["passed"]), rows[0]
