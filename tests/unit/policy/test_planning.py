"""Draft planning: interval-based cron classification, test resources and the plan."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from airflow_sla_promotion.policy.planning import (
    DraftExecutionManager,
    TestResources,
    calculate_test_frequency,
    calculate_test_resources,
    firing_interval,
)
from airflow_sla_promotion.policy.planning import (
    test_interval as interval_of,
)
from airflow_sla_promotion.spec import PromotionCriteria, ResourceRequirements
from tests.unit.policy.factories import T0, make_job


@pytest.mark.parametrize(
    ("cron", "frequency"),
    [
        ("*/15 * * * *", "every_4_hours"),
        ("0 * * * *", "every_4_hours"),  # hourly: exactly one hour is still <= hourly
        ("*/30 9-17 * * 1-5", "every_4_hours"),
        ("0 */2 * * *", "twice_daily"),  # just over hourly
        ("0 */6 * * *", "twice_daily"),
        ("0 2 * * *", "twice_daily"),  # daily: exactly one day
        ("0 2 * * 1-5", "twice_daily"),  # weekdays fire daily (the document read these as weekly)
        ("0 2 */2 * *", "twice_daily"),  # day 31 -> day 1 is one day apart
        ("0 2 * * 1,4", "daily"),  # Monday and Thursday: three days at the least
        ("0 2 * * 1", "daily"),  # weekly: exactly a week (the document read this as daily)
        ("0 2 1,15 * *", "every_2_days"),  # twice a month: two weeks apart
        ("0 2 1 * *", "every_2_days"),  # monthly (the document read this as weekly)
        ("0 0 1 1 *", "every_2_days"),  # yearly: fires once in the horizon
        ("0 0 29 2 *", "every_2_days"),  # leap day
    ],
)
def test_test_frequency_follows_the_real_firing_interval(cron: str, frequency: str) -> None:
    assert calculate_test_frequency(cron) == frequency


def test_firing_interval_is_the_shortest_gap() -> None:
    assert firing_interval("0 2 * * 1-5") == timedelta(days=1)
    assert firing_interval("0 2 * * 1") == timedelta(weeks=1)
    assert firing_interval("0 9,10 * * *") == timedelta(hours=1)


def test_a_cron_that_never_fires_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="never fires"):
        calculate_test_frequency("0 0 30 2 *")


def test_an_invalid_cron_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a valid cron"):
        calculate_test_frequency("61 * * * *")


@pytest.mark.parametrize(
    ("frequency", "interval"),
    [
        ("every_4_hours", timedelta(hours=4)),
        ("twice_daily", timedelta(hours=12)),
        ("daily", timedelta(days=1)),
        ("every_2_days", timedelta(days=2)),
    ],
)
def test_interval_of_each_frequency(frequency: str, interval: timedelta) -> None:
    assert interval_of(frequency) == interval  # type: ignore[arg-type]


def test_unknown_frequency_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown test frequency"):
        interval_of("hourly")  # type: ignore[arg-type]


def _requirements(cpu: float, memory: float, runtime: float) -> ResourceRequirements:
    return ResourceRequirements(cpu_cores=cpu, memory_gb=memory, estimated_runtime_minutes=runtime)


def test_test_resources_keep_the_ten_percent_headroom_without_truncation() -> None:
    # The document's int() turned 2 cores / 4 GiB into 2 / 4: no headroom at all.
    assert calculate_test_resources(_requirements(2, 4, 30)) == TestResources(2.2, 4.4, 36)
    assert calculate_test_resources(_requirements(1.5, 3.3, 7)) == TestResources(1.65, 3.63, 9)


def test_test_resources_minimums() -> None:
    assert calculate_test_resources(_requirements(0.5, 1.0, 1)) == TestResources(1.0, 2.0, 2)
    # just above the minimums: the headroom shows
    assert calculate_test_resources(_requirements(0.95, 1.9, 1)) == TestResources(1.045, 2.09, 2)


def test_test_runtime_rounds_up_without_float_noise() -> None:
    # 10 * 1.2 = 12.000000000000002: rounding noise must not add a minute
    assert calculate_test_resources(_requirements(1, 2, 10)).estimated_runtime_minutes == 12
    assert calculate_test_resources(_requirements(1, 2, 10.1)).estimated_runtime_minutes == 13


def test_test_resources_as_kubernetes_quantities() -> None:
    resources = calculate_test_resources(_requirements(1, 2, 10))
    assert resources.kubernetes_resources() == {
        "requests": {"cpu": "1100m", "memory": "2253Mi"},
        "limits": {"memory": "2253Mi"},
    }


def test_plan_for_a_daily_job() -> None:
    plan = DraftExecutionManager().create_plan(make_job(), T0)
    assert plan.job_id == "orders_ingest"
    assert plan.draft_namespace == "draft-ingestion-ns"
    assert plan.test_frequency == "twice_daily"
    assert plan.test_interval == "PT12H"
    assert plan.test_resources == {"cpu_cores": 2.2, "memory_gb": 8.8, "estimated_runtime_minutes": 36}
    assert plan.test_execution_days == 7
    assert plan.evaluation_dates == [T0 + timedelta(days=day) for day in range(1, 8)]
    assert plan.promotion_criteria == PromotionCriteria()


def test_plan_follows_the_jobs_criteria_and_the_managers_namespace() -> None:
    job = make_job(promotion={"test_execution_days": 10, "min_successful_runs": 5})
    plan = DraftExecutionManager(draft_namespace="sandbox").create_plan(job, T0)
    assert plan.draft_namespace == "sandbox"
    assert len(plan.evaluation_dates) == 10
    assert plan.evaluation_dates[-1] == T0 + timedelta(days=10)
    assert plan.promotion_criteria.min_successful_runs == 5
    assert DraftExecutionManager().window_ends_at(job, T0) == T0 + timedelta(days=10)


def test_plan_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DraftExecutionManager().create_plan(make_job(), datetime(2026, 3, 2))  # noqa: DTZ001


def test_manager_exposes_the_helpers() -> None:
    assert DraftExecutionManager.calculate_test_frequency("0 2 * * 1") == "daily"
    assert DraftExecutionManager.test_interval("daily") == timedelta(days=1)
