"""Feedback: a recommendation for every criterion, the report's shape, per-run advice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_sla_promotion.policy.decision import PromotionDecisionEngine
from airflow_sla_promotion.policy.feedback import (
    CRITERIA,
    criterion_recommendation,
    generate_feedback_report,
    run_recommendations,
)
from airflow_sla_promotion.policy.scoring import PerformanceEvaluator
from tests.unit.policy.factories import T0, make_job, make_run

NOW = T0 + timedelta(days=8)
FAILED_RESULTS = {
    "min_successful_runs": {"required": 3, "actual": 1, "passed": False},
    "min_evaluation_period": {"required_days": 3, "actual_days": 1, "passed": False},
    "performance_variance": {"max_allowed": 0.3, "actual": 0.45, "passed": False},
    "sla_compliance": {"min_required": 0.9, "actual": 0.6, "passed": False},
    "overall_score": {"min_required": 0.8, "actual": 0.55, "passed": False},
    "target_namespace": {"requested": "elsewhere", "allowed": ["prod-ingestion-ns"], "passed": False},
}
DATA = {
    "failed_executions": 2,
    "metric_scores": {"runtime_performance": 0.4, "data_quality": 0.5, "error_rate": 1.0},
    "sla_compliance_results": {"max_runtime": {"compliance": 0.6, "status": "violation"}},
}


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_criterion_gets_a_specific_recommendation(criterion: str) -> None:
    item = criterion_recommendation(criterion, FAILED_RESULTS[criterion], DATA)
    assert set(item) == {"criterion", "issue", "measured", "threshold", "recommendation", "action"}
    assert item["criterion"] == criterion
    assert item["issue"]
    assert item["recommendation"]
    assert item["action"]
    assert item["measured"] is not None
    assert item["threshold"] is not None
    assert not item["issue"].startswith("Criterion")  # not the generic fallback


def test_recommendations_name_the_measured_values() -> None:
    assert (
        "1 of at least 3"
        in criterion_recommendation("min_successful_runs", FAILED_RESULTS["min_successful_runs"], DATA)[
            "issue"
        ]
    )
    assert (
        "2 failed run"
        in criterion_recommendation("min_successful_runs", FAILED_RESULTS["min_successful_runs"], DATA)[
            "recommendation"
        ]
    )
    assert (
        "max_runtime (0.6)"
        in criterion_recommendation("sla_compliance", FAILED_RESULTS["sla_compliance"], DATA)["issue"]
    )
    score = criterion_recommendation("overall_score", FAILED_RESULTS["overall_score"], DATA)["recommendation"]
    assert "longer than estimated" in score  # the weakest metric is named
    target = criterion_recommendation("target_namespace", FAILED_RESULTS["target_namespace"], DATA)
    assert "prod-ingestion-ns" in target["recommendation"]


def test_report_shape_from_parts() -> None:
    report = generate_feedback_report(
        make_job(), {"criteria_results": FAILED_RESULTS, "evaluation_data": DATA}, NOW
    )
    assert set(report) == {
        "job_id",
        "job_name",
        "evaluation_summary",
        "detailed_recommendations",
        "next_steps",
    }
    assert report["job_name"] == "Orders ingestion"
    summary = report["evaluation_summary"]
    assert summary["status"] == "promotion_rejected"
    assert summary["failed_criteria"] == list(CRITERIA)
    assert summary["evaluation_date"] == NOW.isoformat()
    assert [item["criterion"] for item in report["detailed_recommendations"]] == list(CRITERIA)
    assert report["next_steps"]


def test_report_from_an_evaluation_equals_the_engines_report() -> None:
    evaluation = PromotionDecisionEngine().evaluate_promotion_eligibility(make_job(), [make_run()], now=NOW)
    assert generate_feedback_report(make_job(), evaluation, NOW) == evaluation.feedback_report


def test_short_evidence_gets_wait_next_steps() -> None:
    evidence_only = {
        **{name: {**result, "passed": True} for name, result in FAILED_RESULTS.items()},
        "min_evaluation_period": FAILED_RESULTS["min_evaluation_period"],
    }
    report = generate_feedback_report(
        make_job(), {"criteria_results": evidence_only, "evaluation_data": {}}, NOW
    )
    assert report["evaluation_summary"]["failed_criteria"] == ["min_evaluation_period"]
    assert "evidence is too short" in report["next_steps"][0]
    full = generate_feedback_report(
        make_job(), {"criteria_results": FAILED_RESULTS, "evaluation_data": DATA}, NOW
    )
    assert "evidence is too short" not in " ".join(full["next_steps"])


def test_per_run_advice_covers_each_weak_metric() -> None:
    job = make_job(
        sla_requirements={"max_runtime": 30.0}, resource_requirements={"estimated_runtime_minutes": 20.0}
    )
    run = make_run(
        runtime=40.0,
        resource_usage=None,
        data_quality_results={"checks": [{"name": "a", "status": "failed"}]},
        try_number=2,
        records_processed=100,
        records_failed=10,
    )
    advice = " | ".join(PerformanceEvaluator().evaluate_draft_execution(run, job).recommendations)
    for expected in (
        "over the estimate",
        "No resource usage",
        "1 failed",
        "retry",
        "10% of records",
        "max_runtime",
    ):
        assert expected in advice
    assert run_recommendations({}) == []
