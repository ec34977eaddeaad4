"""Property tests: order never matters, a failure never helps, every score stays in [0, 1]."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_sla_promotion.policy.decision import PromotionDecisionEngine
from airflow_sla_promotion.policy.scoring import PerformanceEvaluator
from airflow_sla_promotion.spec import DraftExecution, IngestionJob, PromotionCriteria
from tests.unit.policy.factories import T0, job_data

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = T0 + timedelta(days=9)

sla_values = {
    "max_runtime": st.floats(5, 80),
    "success_rate": st.floats(0.5, 1.0),
    "data_freshness": st.floats(5, 120),
    "availability": st.floats(0.3, 1.0),
}


@st.composite
def jobs(draw: st.DrawFn, *, recovery: bool = True) -> IngestionJob:
    names = [*sla_values, "error_recovery_time"] if recovery else list(sla_values)
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    strategies = {**sla_values, "error_recovery_time": st.floats(10, 600)}
    sla = {name: draw(strategies[name]) for name in chosen}
    draft: dict[str, Any] = {}
    if draw(st.booleans()):
        draft = {"started_at": T0.isoformat(), "window_ends_at": (T0 + timedelta(days=7)).isoformat()}
    data = job_data(
        schedule_config={"cron": draw(st.sampled_from(["0 * * * *", "0 2 * * *", "0 2 * * 1"]))},
        resource_requirements={
            "cpu_cores": draw(st.floats(0.5, 4)),
            "memory_gb": draw(st.floats(1, 16)),
            "estimated_runtime_minutes": draw(st.floats(5, 80)),
        },
        sla_requirements=sla,
        draft=draft,
    )
    return IngestionJob.model_validate(data)


@st.composite
def runs(draw: st.DrawFn) -> list[DraftExecution]:
    """Histories that are mostly healthy (so promotions happen) with wild values mixed in."""
    count = draw(st.integers(0, 10))
    base_runtime = draw(st.floats(5, 60))
    result = []
    for index in range(count):
        wild = draw(st.integers(0, 4)) == 0
        if wild:
            runtime = draw(st.floats(0, 120))
            usage = draw(
                st.none()
                | st.fixed_dictionaries(
                    {"avg_cpu_utilization": st.floats(0, 5), "peak_memory_usage_gb": st.floats(0, 20)}
                )
            )
        else:
            runtime = base_runtime * draw(st.floats(0.8, 1.2))
            usage = {
                "avg_cpu_utilization": 2.0 * draw(st.floats(0.6, 0.95)),
                "peak_memory_usage_gb": 8.0 * draw(st.floats(0.6, 0.95)),
            }
        checks = draw(
            st.none()
            | st.lists(st.sampled_from(["passed", "passed", "passed", "failed", "warning"]), max_size=5)
        )
        processed = draw(st.none() | st.integers(0, 10_000))
        result.append(
            DraftExecution.model_validate(
                {
                    "execution_id": f"run-{index:02d}",
                    "job_id": "orders_ingest",
                    "status": draw(st.sampled_from(["completed"] * 5 + ["failed"])),
                    # hours from T0 - 12 h (before some draft windows) to T0 + 8 days; ties allowed
                    "created_at": (T0 + timedelta(hours=draw(st.integers(-12, 192)))).isoformat(),
                    "actual_runtime_minutes": runtime,
                    "allocated_resources": {"cpu_cores": 2.0, "memory_gb": 8.0},
                    "resource_usage": usage,
                    "data_quality_results": None
                    if checks is None
                    else {"checks": [{"name": f"c{i}", "status": status} for i, status in enumerate(checks)]},
                    "data_freshness_minutes": draw(st.none() | st.floats(0, 200)),
                    "records_processed": processed,
                    "records_failed": None if processed is None else draw(st.integers(0, 200)),
                    "try_number": draw(st.sampled_from([1, 1, 1, 2, 3])),
                }
            )
        )
    return result


# Criteria loose enough that small generated histories promote often, so both outcomes are exercised.
loose_criteria = st.builds(
    PromotionCriteria,
    min_successful_runs=st.integers(1, 4),
    min_evaluation_period_days=st.integers(0, 3),
    min_overall_score=st.floats(0.3, 0.9),
    max_performance_variance=st.floats(0.1, 2.0),
    min_sla_compliance=st.floats(0.3, 1.0),
)


@PROPERTY_SETTINGS
@given(job=jobs(), history=runs(), criteria=loose_criteria, seed=st.randoms(use_true_random=False))
def test_the_order_of_runs_does_not_matter(job: IngestionJob, history: list, criteria, seed) -> None:  # type: ignore[no-untyped-def]
    engine = PromotionDecisionEngine(criteria=criteria)
    shuffled = list(history)
    seed.shuffle(shuffled)
    assert engine.evaluate_promotion_eligibility(
        job, shuffled, now=NOW
    ) == engine.evaluate_promotion_eligibility(job, history, now=NOW)


@PROPERTY_SETTINGS
@given(job=jobs(recovery=False), history=runs(), criteria=loose_criteria, pick=st.integers(0, 99))
def test_a_failed_run_never_turns_a_reject_into_a_promote(
    job: IngestionJob, history: list, criteria: PromotionCriteria, pick: int
) -> None:
    successful = [index for index, run in enumerate(history) if run.status == "completed"]
    if not successful:
        return
    index = successful[pick % len(successful)]
    worse = list(history)
    worse[index] = history[index].model_copy(update={"status": "failed"})
    engine = PromotionDecisionEngine(criteria=criteria)
    before = engine.evaluate_promotion_eligibility(job, history, now=NOW).promotion_decision.decision
    after = engine.evaluate_promotion_eligibility(job, worse, now=NOW).promotion_decision.decision
    event(f"{before} -> {after}")
    assert not (before == "reject" and after == "promote")


@PROPERTY_SETTINGS
@given(job=jobs(), history=runs(), criteria=loose_criteria)
def test_every_score_stays_in_zero_one(job: IngestionJob, history: list, criteria: PromotionCriteria) -> None:
    evaluator = PerformanceEvaluator()
    for run in history:
        evaluation = evaluator.evaluate_draft_execution(run, job)
        assert 0.0 <= evaluation.overall_score <= 1.0
        for result in evaluation.evaluation_results.values():
            assert 0.0 <= result["score"] <= 1.0
    evaluation = PromotionDecisionEngine(criteria=criteria).evaluate_promotion_eligibility(
        job, history, now=NOW
    )
    data = evaluation.evaluation_data
    assert 0.0 <= data["overall_score"] <= 1.0
    assert 0.0 <= data["sla_compliance"] <= 1.0
    for result in data["sla_compliance_results"].values():
        assert 0.0 <= result["compliance"] <= 1.0
    for score in data["metric_scores"].values():
        assert score is None or 0.0 <= score <= 1.0
    confidence = evaluation.promotion_decision.confidence
    assert confidence is None or 0.0 <= confidence <= 1.0
    assert set(evaluation.criteria_results) >= {
        "min_successful_runs",
        "min_evaluation_period",
        "performance_variance",
        "sla_compliance",
        "overall_score",
        "overall_status",
    }


@PROPERTY_SETTINGS
@given(job=jobs(), history=runs())
def test_the_lean_score_path_agrees_with_the_full_evaluation(job: IngestionJob, history: list) -> None:
    evaluator = PerformanceEvaluator({"data_quality": 2.0})
    for run in history:
        evaluation = evaluator.evaluate_draft_execution(run, job)
        lean = evaluator.score_run(run, job)
        assert tuple(lean) == tuple(evaluation.evaluation_results[metric]["score"] for metric in lean._fields)
        assert evaluator.overall_score(lean) == evaluation.overall_score
