"""PromotionDecisionEngine: every criterion on both sides, the document's defects fixed, adjustments."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from airflow_sla_promotion.policy.decision import (
    EVIDENCE_CRITERIA,
    PromotionDecisionEngine,
    coefficient_of_variation,
    evidence_short,
)
from airflow_sla_promotion.policy.evidence import RunEvidence, assess_evidence
from airflow_sla_promotion.spec import PromotionCriteria
from tests.unit.policy.factories import T0, make_job, make_run, make_runs

NOW = T0 + timedelta(days=8)
ENGINE = PromotionDecisionEngine()
CRITERIA = (
    "min_successful_runs",
    "min_evaluation_period",
    "performance_variance",
    "sla_compliance",
    "overall_score",
)
DECISION_KEYS = {
    "decision",
    "target_namespace",
    "resource_adjustments",
    "confidence",
    "failed_criteria",
    "recommendations",
    "message",
}


def decide(job=None, runs=None, engine=ENGINE):  # type: ignore[no-untyped-def]
    return engine.evaluate_promotion_eligibility(
        job or make_job(), make_runs(7) if runs is None else runs, now=NOW
    )


def failed(evaluation) -> list[str]:  # type: ignore[no-untyped-def]
    return evaluation.promotion_decision.failed_criteria


def test_a_healthy_history_promotes() -> None:
    evaluation = decide()
    decision = evaluation.promotion_decision
    assert decision.decision == "promote"
    assert decision.target_namespace == "prod-ingestion-ns"
    assert decision.failed_criteria == []
    assert decision.resource_adjustments == {}  # usage already in the 70-90 % band
    assert 0.0 < decision.confidence <= 1.0
    assert evaluation.criteria_results["overall_status"] == "passed"
    assert evaluation.feedback_report is None
    assert set(decision.model_dump()) == DECISION_KEYS
    assert evaluation.evaluated_at == NOW


def test_evaluation_data_has_the_documents_keys() -> None:
    data = decide().evaluation_data
    for key in (
        "total_executions",
        "successful_executions",
        "failed_executions",
        "success_rate",
        "avg_runtime_minutes",
        "runtime_variance",
        "avg_cpu_utilization",
        "avg_memory_utilization",
        "sla_compliance",
        "avg_data_quality_score",
        "evaluation_period_days",
    ):
        assert key in data
    assert (data["total_executions"], data["successful_executions"], data["evaluation_period_days"]) == (
        7,
        7,
        3,
    )


# --- each criterion on both sides of its threshold -------------------------------------------------------


def test_min_successful_runs_threshold() -> None:
    at = decide(runs=make_runs(3, every=timedelta(hours=36)))
    assert at.promotion_decision.decision == "promote"
    below = decide(runs=make_runs(2, every=timedelta(hours=72)))
    assert failed(below) == ["min_successful_runs"]
    assert below.criteria_results["min_successful_runs"] == {"required": 3, "actual": 2, "passed": False}


def test_min_evaluation_period_threshold() -> None:
    at = decide(runs=make_runs(3, every=timedelta(hours=36)))
    assert at.criteria_results["min_evaluation_period"] == {
        "required_days": 3,
        "actual_days": 3,
        "passed": True,
    }
    below = decide(runs=make_runs(3, every=timedelta(hours=36) - timedelta(minutes=1)))
    assert failed(below) == ["min_evaluation_period"]
    assert below.criteria_results["min_evaluation_period"]["actual_days"] == 2


def _alternating(low: float, high: float) -> list:
    return [make_run(i, runtime=low if i % 2 else high) for i in range(8)]


def test_performance_variance_threshold() -> None:
    at = decide(runs=_alternating(7.0, 13.0))  # mean 10, population sd 3: CV exactly 0.3
    assert at.criteria_results["performance_variance"] == {"max_allowed": 0.3, "actual": 0.3, "passed": True}
    assert at.promotion_decision.decision == "promote"
    above = decide(runs=_alternating(6.9, 13.1))
    assert failed(above) == ["performance_variance"]
    assert above.criteria_results["performance_variance"]["actual"] == pytest.approx(0.31)


def test_sla_compliance_threshold() -> None:
    job = make_job(sla_requirements={"max_runtime": 30.0})
    one_slow = [make_run(i, runtime=31.0 if i == 0 else 29.0) for i in range(10)]
    at = decide(job, one_slow)
    assert at.criteria_results["sla_compliance"] == {"min_required": 0.9, "actual": 0.9, "passed": True}
    assert at.promotion_decision.decision == "promote"
    two_slow = [make_run(i, runtime=31.0 if i < 2 else 29.0) for i in range(10)]
    below = decide(job, two_slow)
    assert failed(below) == ["sla_compliance"]
    assert below.criteria_results["sla_compliance"]["actual"] == 0.8


def test_overall_score_threshold() -> None:
    runs = make_runs(7, resource_usage=None)  # every run scores 0.9
    at = decide(runs=runs, engine=PromotionDecisionEngine(criteria=PromotionCriteria(min_overall_score=0.9)))
    assert at.criteria_results["overall_score"] == {"min_required": 0.9, "actual": 0.9, "passed": True}
    above = decide(
        runs=runs, engine=PromotionDecisionEngine(criteria=PromotionCriteria(min_overall_score=0.9001))
    )
    assert failed(above) == ["overall_score"]


def test_composite_counts_a_failed_run_as_zero() -> None:
    runs = [*make_runs(4, every=timedelta(days=1)), make_run(4, status="failed", every=timedelta(days=1))]
    evaluation = decide(runs=runs)
    assert evaluation.evaluation_data["overall_score"] == 0.8  # (4 x 1.0 + 0) / 5
    assert evaluation.promotion_decision.decision == "promote"
    runs = [*make_runs(3), make_run(3, status="failed", created_at=T0 + timedelta(days=3, hours=12))]
    assert failed(decide(runs=runs)) == ["overall_score"]  # 3 / 4 = 0.75


def test_job_overrides_are_the_criteria_in_force_by_default() -> None:
    job = make_job(promotion={"min_successful_runs": 8})
    evaluation = decide(job)
    assert failed(evaluation) == ["min_successful_runs"]
    assert evaluation.criteria_results["min_successful_runs"]["required"] == 8


# --- target namespace ------------------------------------------------------------------------------------


def test_a_target_outside_the_allowlist_is_a_reject_naming_it() -> None:
    job = make_job(promotion={"target_namespace": "analytics-prod"})
    evaluation = decide(job)
    assert failed(evaluation) == ["target_namespace"]
    assert evaluation.criteria_results["target_namespace"] == {
        "requested": "analytics-prod",
        "allowed": ["prod-ingestion-ns"],
        "passed": False,
    }
    assert not evaluation_is_evidence_short(evaluation)
    allowed = PromotionDecisionEngine(allowed_target_namespaces=("prod-ingestion-ns", "analytics-prod"))
    promoted = decide(job, engine=allowed)
    assert promoted.promotion_decision.target_namespace == "analytics-prod"


def test_the_draft_namespace_is_never_a_target() -> None:
    job = make_job(promotion={"target_namespace": "draft-ingestion-ns"})
    engine = PromotionDecisionEngine(allowed_target_namespaces=("draft-ingestion-ns", "prod-ingestion-ns"))
    evaluation = decide(job, engine=engine)
    assert failed(evaluation) == ["target_namespace"]
    assert evaluation.criteria_results["target_namespace"]["allowed"] == ["prod-ingestion-ns"]


def evaluation_is_evidence_short(evaluation) -> bool:  # type: ignore[no-untyped-def]
    return evidence_short(evaluation.promotion_decision.failed_criteria)


def test_evidence_criteria() -> None:
    assert frozenset({"min_successful_runs", "min_evaluation_period"}) == EVIDENCE_CRITERIA
    assert evidence_short(["min_successful_runs"])
    assert evidence_short(["min_successful_runs", "min_evaluation_period"])
    assert not evidence_short([])
    assert not evidence_short(["min_evaluation_period", "overall_score"])


# --- the document's defects ------------------------------------------------------------------------------


def test_no_successful_run_still_reports_all_five_criteria() -> None:
    runs = [make_run(i, status="failed") for i in range(4)]
    evaluation = decide(runs=runs)
    for criterion in CRITERIA:
        assert "passed" in evaluation.criteria_results[criterion]
    assert evaluation.criteria_results["overall_status"] == "failed"
    decision = evaluation.promotion_decision
    assert decision.decision == "reject"
    assert {"min_successful_runs", "overall_score"} <= set(decision.failed_criteria)
    assert "failed 0" not in decision.message
    assert f"failed {len(decision.failed_criteria)} of 6" in decision.message
    assert evaluation.evaluation_data["avg_runtime_minutes"] is None
    assert evaluation.evaluation_data["avg_cpu_utilization"] is None


def test_an_empty_history_is_a_clear_reject() -> None:
    evaluation = decide(runs=[])
    assert evaluation.promotion_decision.decision == "reject"
    assert set(failed(evaluation)) == {
        "min_successful_runs",
        "min_evaluation_period",
        "sla_compliance",
        "overall_score",
    }
    data = evaluation.evaluation_data
    assert (
        data["total_executions"],
        data["success_rate"],
        data["sla_compliance"],
        data["overall_score"],
    ) == (
        0,
        None,
        0.0,
        0.0,
    )
    assert evaluation.feedback_report is not None
    assert set(evaluation.promotion_decision.model_dump()) == DECISION_KEYS
    assert all(key in evaluation.criteria_results for key in CRITERIA)


def test_runs_in_any_order_give_the_same_evaluation() -> None:
    runs = [make_run(i, runtime=20.0 + i, status="failed" if i == 4 else "completed") for i in range(9)]
    shuffled = runs[::-1]
    random.Random(1).shuffle(shuffled)
    assert decide(runs=shuffled) == decide(runs=runs)
    # the document took first/last as given: reversed input gave a negative period
    assert decide(runs=runs[::-1]).evaluation_data["evaluation_period_days"] == 4


def test_only_runs_of_the_current_draft_window_count() -> None:
    job = make_job(draft={"started_at": T0.isoformat()})
    old = [make_run(100 + i, status="failed", created_at=T0 - timedelta(days=10 - i)) for i in range(5)]
    evaluation = decide(job, [*old, *make_runs(7)])
    assert evaluation.promotion_decision.decision == "promote"
    assert evaluation.evaluation_data["ignored_executions"] == 5
    assert evaluation.evaluation_data["total_executions"] == 7


def test_the_evaluation_period_is_the_sensors_rule() -> None:
    runs = [
        make_run(i, created_at=T0 + timedelta(hours=17 * i), status="failed" if i == 2 else "completed")
        for i in range(6)
    ]
    evaluation = decide(runs=runs)
    evidence = assess_evidence(
        [RunEvidence(run.created_at, run.status == "completed") for run in runs], PromotionCriteria()
    )
    assert evaluation.evaluation_data["evaluation_period_days"] == evidence.evaluation_period_days == 3
    assert evaluation.criteria_results["min_successful_runs"]["actual"] == evidence.successful_runs


def _apply(job, adjustments):  # type: ignore[no-untyped-def]
    resources = job.resource_requirements.model_copy(
        update={field: change["recommended"] for field, change in adjustments.items()}
    )
    return job.model_copy(update={"resource_requirements": resources})


def test_resource_adjustments_are_absolute_and_idempotent() -> None:
    job = make_job(
        resource_requirements={"cpu_cores": 4.0, "memory_gb": 32.0, "estimated_runtime_minutes": 20.0}
    )
    runs = [make_run(i, runtime=24.0 + i % 3) for i in range(7)]
    adjustments = decide(job, runs).promotion_decision.resource_adjustments
    assert set(adjustments) == {"cpu_cores", "memory_gb", "estimated_runtime_minutes"}
    assert adjustments["cpu_cores"]["current"] == 4.0
    assert adjustments["cpu_cores"]["recommended"] == pytest.approx(1.7 / 0.8)
    assert adjustments["memory_gb"]["recommended"] >= 6.8  # never below the observed peak
    assert 0.7 <= 6.8 / adjustments["memory_gb"]["recommended"] <= 0.9
    assert adjustments["estimated_runtime_minutes"]["recommended"] == 26.0  # observed p90
    assert all(change["reason"] for change in adjustments.values())
    adjusted = _apply(job, adjustments)
    again = decide(adjusted, runs).promotion_decision
    assert again.decision == "promote"
    assert again.resource_adjustments == {}
    # applying the same absolute values twice changes nothing
    assert _apply(adjusted, adjustments) == adjusted


def test_undersized_resources_are_raised() -> None:
    job = make_job(resource_requirements={"cpu_cores": 1.0, "memory_gb": 4.0})
    runs = make_runs(7, resource_usage={"avg_cpu_utilization": 0.95, "peak_memory_usage_gb": 3.9})
    adjustments = decide(job, runs).promotion_decision.resource_adjustments
    assert adjustments["cpu_cores"]["recommended"] == pytest.approx(0.95 / 0.8, abs=0.001)
    assert adjustments["memory_gb"]["recommended"] > 3.9 / 0.8 - 0.001


def test_no_usage_reported_means_no_resource_adjustment() -> None:
    job = make_job(resource_requirements={"cpu_cores": 16.0})
    runs = make_runs(7, resource_usage=None)
    assert decide(job, runs).promotion_decision.resource_adjustments == {}


def test_confidence_grows_with_evidence_and_stays_in_range() -> None:
    few = decide(runs=make_runs(7)).promotion_decision.confidence
    many = decide(runs=make_runs(14)).promotion_decision.confidence
    assert 0.0 <= few < many <= 1.0
    assert decide(runs=[]).promotion_decision.confidence is None


def test_a_reject_carries_feedback_for_each_failed_criterion() -> None:
    evaluation = decide(runs=_alternating(2.0, 20.0)[:3])
    recommendations = evaluation.promotion_decision.recommendations
    assert [item["criterion"] for item in recommendations] == evaluation.promotion_decision.failed_criteria
    for item in recommendations:
        assert set(item) == {"criterion", "issue", "measured", "threshold", "recommendation", "action"}
    report = evaluation.feedback_report
    assert report is not None
    assert report["evaluation_summary"]["failed_criteria"] == evaluation.promotion_decision.failed_criteria
    assert report["detailed_recommendations"] == recommendations


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ENGINE.evaluate_promotion_eligibility(make_job(), [], now=datetime(2026, 3, 9))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], 0.0), ([5.0], 0.0), ([0.0, 0.0], 0.0), ([7.0, 13.0], 0.3), ([10.0, 10.0, 10.0], 0.0)],
)
def test_coefficient_of_variation(values: list[float], expected: float) -> None:
    assert coefficient_of_variation(values) == pytest.approx(expected)


def test_failing_the_slow_outlier_does_not_hide_the_variance() -> None:
    # Variance over successful runs only would drop to 0 once the outlier fails, turning this reject
    # into a promote: the variance counts every run's runtime, so a failure never helps.
    runs = [make_run(i, runtime=60.0 if i == 0 else 20.0) for i in range(10)]
    assert failed(decide(runs=runs)) == ["performance_variance"]
    runs[0] = runs[0].model_copy(update={"status": "failed"})
    assert decide(runs=runs).promotion_decision.decision == "reject"


def test_a_pod_that_never_started_is_not_a_runtime() -> None:
    # An image-pull failure has runtime 0: it is not evidence of erratic runtime, so the variance
    # stays that of the runs that ran (the failure still costs composite score and success rate).
    runs = [make_run(i, runtime=28.0) for i in range(6)]
    runs.append(
        make_run(6, status="failed", runtime=0.0, resource_usage=None, failure_reason="image pull error")
    )
    evaluation = decide(runs=runs)
    assert evaluation.evaluation_data["runtime_variance"] == 0.0
    assert evaluation.criteria_results["performance_variance"]["passed"] is True
