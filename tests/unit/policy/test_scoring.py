"""PerformanceEvaluator: every score band on both sides, the no-data rules, weights and guards."""

from __future__ import annotations

import pytest

from airflow_sla_promotion.policy.scoring import (
    PerformanceEvaluator,
    data_quality_score,
    efficiency_score,
    run_quality_score,
)
from airflow_sla_promotion.spec import DataQualityResults, IngestionJob, ResourceRequirements
from tests.unit.policy.factories import make_job, make_run

EVALUATOR = PerformanceEvaluator()


def _results(run_changes: dict | None = None, **job_changes: object) -> dict:
    job = make_job(**job_changes)
    run = make_run(**(run_changes or {}))
    return EVALUATOR.evaluate_draft_execution(run, job).evaluation_results


@pytest.mark.parametrize(
    ("runtime", "score", "status"),
    [
        (99.0, 1.0, "excellent"),
        (100.0, 1.0, "excellent"),
        (100.5, 0.9, "good"),
        (120.0, 0.9, "good"),
        (120.5, 0.7, "acceptable"),
        (150.0, 0.7, "acceptable"),
        (150.5, 0.4, "poor"),
    ],
)
def test_runtime_performance_bands(runtime: float, score: float, status: str) -> None:
    result = _results(
        {"runtime": runtime},
        resource_requirements={"estimated_runtime_minutes": 100.0},
    )["runtime_performance"]
    assert (result["score"], result["status"]) == (score, status)
    assert result["performance_ratio"] == pytest.approx(runtime / 100)
    assert result["variance_percentage"] == pytest.approx(runtime - 100)


def test_runtime_estimate_of_zero_is_a_clear_error() -> None:
    # Validation forbids it; a hand-built job must still not divide by zero.
    job = make_job()
    broken = job.model_copy(
        update={
            "resource_requirements": ResourceRequirements.model_construct(
                cpu_cores=1.0, memory_gb=1.0, estimated_runtime_minutes=0.0
            )
        }
    )
    assert isinstance(broken, IngestionJob)
    with pytest.raises(ValueError, match="estimated_runtime_minutes must be > 0"):
        EVALUATOR.evaluate_draft_execution(make_run(), broken)


@pytest.mark.parametrize(
    ("efficiency", "score"),
    [
        (0.49, 0.4),
        (0.5, 0.8),
        (0.69, 0.8),
        (0.7, 1.0),
        (0.8, 1.0),
        (0.9, 1.0),
        (0.91, 0.9),
        (1.0, 0.9),
        (1.01, 0.6),
        (0.0, 0.4),
    ],
)
def test_efficiency_score_bands(efficiency: float, score: float) -> None:
    assert efficiency_score(efficiency) == score


def test_resource_utilization_scores_cpu_and_memory() -> None:
    result = _results(
        {
            "allocated_resources": {"cpu_cores": 2.0, "memory_gb": 10.0},
            "resource_usage": {"avg_cpu_utilization": 1.6, "peak_memory_usage_gb": 4.0},
        }
    )["resource_utilization"]
    assert result["cpu_efficiency"] == pytest.approx(0.8)
    assert result["memory_efficiency"] == pytest.approx(0.4)
    assert (result["cpu_score"], result["memory_score"], result["score"]) == (1.0, 0.4, 0.7)
    assert result["status"] == "under_utilized"
    assert any("Memory use is 40%" in advice for advice in result["recommendations"])


def test_resource_utilization_over_allocation_is_flagged() -> None:
    result = _results(
        {
            "allocated_resources": {"cpu_cores": 1.0, "memory_gb": 2.0},
            "resource_usage": {"avg_cpu_utilization": 1.2, "peak_memory_usage_gb": 1.6},
        }
    )["resource_utilization"]
    assert (result["cpu_score"], result["memory_score"]) == (0.6, 1.0)
    assert result["status"] == "over_utilized"
    assert any("raise resource_requirements.cpu_cores" in advice for advice in result["recommendations"])


def test_missing_usage_is_never_a_pass() -> None:
    result = _results({"resource_usage": None})["resource_utilization"]
    assert (result["score"], result["status"]) == (0.5, "no_usage_data")


def _checks(*statuses: str) -> dict:
    return {"checks": [{"name": f"check{i}", "status": status} for i, status in enumerate(statuses)]}


@pytest.mark.parametrize(
    ("statuses", "score", "status"),
    [
        (("passed",) * 3, 1.0, "excellent"),
        (("passed", "warning"), 0.8, "good"),
        (("passed",) * 9 + ("failed",), 0.6, "acceptable"),  # exactly 10 % failed
        (("passed",) * 8 + ("failed",), 0.3, "poor"),  # 11 % failed
        (("passed",) * 8 + ("failed", "failed"), 0.3, "poor"),
        (("warning", "warning"), 0.8, "good"),
    ],
)
def test_data_quality_bands(statuses: tuple[str, ...], score: float, status: str) -> None:
    result = _results({"data_quality_results": _checks(*statuses)})["data_quality"]
    assert (result["score"], result["status"]) == (score, status)
    assert result["total_checks"] == len(statuses)
    assert result["pass_rate"] == pytest.approx(statuses.count("passed") / len(statuses))


@pytest.mark.parametrize("results", [None, {"checks": []}])
def test_no_quality_checks_score_half_without_dividing_by_zero(results: dict | None) -> None:
    result = _results({"data_quality_results": results})["data_quality"]
    assert (result["score"], result["status"]) == (0.5, "no_quality_checks")


def test_a_recorded_quality_score_is_used_when_no_checks_came_with_it() -> None:
    result = _results({"data_quality_results": None, "data_quality_score": 0.7})["data_quality"]
    assert (result["score"], result["source"]) == (0.7, "recorded_score")


def test_data_quality_score_helper() -> None:
    assert data_quality_score(None) is None
    assert data_quality_score(DataQualityResults(checks=[])) is None
    assert data_quality_score(DataQualityResults.model_validate(_checks("passed", "warning"))) == 0.8
    assert run_quality_score(make_run(data_quality_results=None, data_quality_score=0.9)) == 0.9
    assert run_quality_score(make_run(data_quality_results=None)) is None


@pytest.mark.parametrize(
    ("failed_records", "score"),
    [
        (0, 1.0),
        (10, 1.0),  # 0.1 %
        (11, 0.9),
        (100, 0.9),  # 1 %
        (101, 0.7),
        (500, 0.7),  # 5 %
        (501, 0.4),
    ],
)
def test_error_rate_bands_by_failed_records(failed_records: int, score: float) -> None:
    result = _results({"records_processed": 10_000, "records_failed": failed_records})["error_rate"]
    assert result["score"] == score


def test_error_rate_of_a_failed_run_is_zero() -> None:
    result = _results({"status": "failed", "failure_reason": "OOMKilled"})["error_rate"]
    assert (result["score"], result["status"], result["failure_reason"]) == (0.0, "failed", "OOMKilled")


def test_error_rate_without_record_counts_is_one() -> None:
    result = _results({"records_processed": None, "records_failed": None})["error_rate"]
    assert result["score"] == 1.0
    assert result["failed_record_share"] is None


def test_error_rate_when_nothing_was_processed_but_records_failed() -> None:
    assert _results({"records_processed": 0, "records_failed": 3})["error_rate"]["score"] == 0.4


def test_a_retried_run_scores_at_most_point_eight() -> None:
    assert _results({"try_number": 2})["error_rate"]["score"] == 0.8
    assert (
        _results({"try_number": 2, "records_processed": 100, "records_failed": 50})["error_rate"]["score"]
        == 0.4
    )


def test_per_run_sla_without_declared_checks_is_one() -> None:
    result = _results()["sla_compliance"]
    assert (result["score"], result["status"]) == (1.0, "no_per_run_sla")


def test_per_run_sla_is_the_share_of_checks_met() -> None:
    sla = {"max_runtime": 30.0, "data_freshness": 15.0}
    met_one = _results({"runtime": 30.0, "data_freshness_minutes": 16.0}, sla_requirements=sla)[
        "sla_compliance"
    ]
    assert (met_one["score"], met_one["status"]) == (0.5, "violation")
    met_both = _results({"runtime": 30.0, "data_freshness_minutes": 15.0}, sla_requirements=sla)[
        "sla_compliance"
    ]
    assert (met_both["score"], met_both["status"]) == (1.0, "compliant")


def test_unreported_freshness_does_not_meet_the_sla() -> None:
    result = _results({"data_freshness_minutes": None}, sla_requirements={"data_freshness": 60.0})
    assert result["sla_compliance"]["score"] == 0.0


def test_overall_score_is_the_mean_and_eligibility_starts_at_point_eight() -> None:
    job = make_job(sla_requirements={"max_runtime": 30.0, "data_freshness": 15.0})
    # runtime 1.0, resources 0.5 (no usage), quality 1.0, errors 1.0, per-run SLA 0.5 -> 4.0 / 5
    at_threshold = make_run(runtime=29.0, resource_usage=None, data_freshness_minutes=16.0)
    evaluation = EVALUATOR.evaluate_draft_execution(at_threshold, job)
    assert evaluation.overall_score == 0.8
    assert evaluation.promotion_eligible
    below = make_run(
        runtime=29.0,
        resource_usage=None,
        data_freshness_minutes=16.0,
        data_quality_results=_checks("passed", "warning"),
    )
    evaluation = EVALUATOR.evaluate_draft_execution(below, job)
    assert evaluation.overall_score == pytest.approx(0.76)
    assert not evaluation.promotion_eligible
    assert evaluation.recommendations


def test_a_failed_run_is_never_eligible() -> None:
    # weights that ignore error_rate: the other metrics alone would make it eligible
    evaluator = PerformanceEvaluator({"error_rate": 0.0})
    evaluation = evaluator.evaluate_draft_execution(make_run(status="failed"), make_job())
    assert evaluation.overall_score == 1.0
    assert not evaluation.promotion_eligible
    assert "The run failed" in " ".join(evaluation.recommendations)


def test_weights_change_the_overall_score() -> None:
    run = make_run(resource_usage=None)  # resource score 0.5, the rest 1.0
    job = make_job()
    assert PerformanceEvaluator().evaluate_draft_execution(run, job).overall_score == pytest.approx(0.9)
    heavy = PerformanceEvaluator({"resource_utilization": 5.0})
    assert heavy.evaluate_draft_execution(run, job).overall_score == pytest.approx((4 + 2.5) / 9)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"speed": 1.0}, "unknown metric"),
        ({"data_quality": -1.0}, "non-negative"),
        (
            dict.fromkeys(
                (
                    "runtime_performance",
                    "resource_utilization",
                    "data_quality",
                    "error_rate",
                    "sla_compliance",
                ),
                0.0,
            ),
            "positive",
        ),
    ],
)
def test_invalid_weights_are_refused(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PerformanceEvaluator(weights)


def test_a_healthy_run_needs_no_advice() -> None:
    evaluation = EVALUATOR.evaluate_draft_execution(make_run(), make_job())
    assert evaluation.overall_score == 1.0
    assert evaluation.recommendations == []
    assert set(evaluation.evaluation_results) == {
        "runtime_performance",
        "resource_utilization",
        "data_quality",
        "error_rate",
        "sla_compliance",
    }
