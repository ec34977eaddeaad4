"""Draft planning: test frequency from the cron's real firing interval, test resources, evaluation dates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, get_args

from croniter import CroniterBadDateError, croniter

from airflow_sla_promotion.policy.quantities import kubernetes_resources
from airflow_sla_promotion.spec import DEFAULT_CRITERIA, DEFAULT_DRAFT_NAMESPACE, DraftPlan

if TYPE_CHECKING:
    from airflow_sla_promotion.spec import IngestionJob, PromotionCriteria, ResourceRequirements

TestFrequency = Literal["every_4_hours", "twice_daily", "daily", "every_2_days"]
TEST_FREQUENCIES: tuple[TestFrequency, ...] = get_args(TestFrequency)

#: How often the draft DAG runs for each test frequency.
TEST_INTERVALS: dict[TestFrequency, timedelta] = {
    "every_4_hours": timedelta(hours=4),
    "twice_daily": timedelta(hours=12),
    "daily": timedelta(days=1),
    "every_2_days": timedelta(days=2),
}
_ISO_DURATIONS: dict[TestFrequency, str] = {
    "every_4_hours": "PT4H",
    "twice_daily": "PT12H",
    "daily": "P1D",
    "every_2_days": "P2D",
}

# The firing interval is measured from a fixed instant, so the answer never depends on the clock.
# 2024-01-01 is a Monday at the start of a leap year; twelve weeks cover every weekly and monthly cron.
_CRON_REFERENCE = datetime(2024, 1, 1, tzinfo=UTC)
_CRON_HORIZON = timedelta(weeks=12)
_CRON_MAX_FIRES = 5000

TEST_CPU_FACTOR = 1.1
TEST_MEMORY_FACTOR = 1.1
TEST_RUNTIME_FACTOR = 1.2
MIN_TEST_CPU_CORES = 1.0
MIN_TEST_MEMORY_GB = 2.0
_NOISE_DECIMALS = 6


@lru_cache(maxsize=256)
def firing_interval(cron: str) -> timedelta | None:
    """The shortest gap between consecutive fire times over twelve weeks; None if it fires at most once."""
    if not croniter.is_valid(cron):
        raise ValueError(f"not a valid cron expression: {cron!r}")
    schedule = croniter(cron, _CRON_REFERENCE)
    end = _CRON_REFERENCE + _CRON_HORIZON
    try:
        previous: datetime = schedule.get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {cron!r} never fires") from None
    shortest: timedelta | None = None
    for _ in range(_CRON_MAX_FIRES):
        try:
            current: datetime = schedule.get_next(datetime)
        except CroniterBadDateError:
            break
        if current > end:
            break
        gap = current - previous
        if shortest is None or gap < shortest:
            shortest = gap
        if shortest <= timedelta(hours=1):
            break  # cannot get more frequent than the most frequent class
        previous = current
    return shortest


def calculate_test_frequency(cron: str) -> TestFrequency:
    """Test frequency of a production cron, classified by its real firing interval.

    <= hourly -> every_4_hours, <= daily -> twice_daily, <= weekly -> daily, else every_2_days.
    So ``0 2 * * 1-5`` (weekdays) is daily, ``0 2 * * 1`` weekly and ``0 2 1 * *`` monthly.
    """
    interval = firing_interval(" ".join(cron.split()))
    if interval is None:
        return "every_2_days"
    if interval <= timedelta(hours=1):
        return "every_4_hours"
    if interval <= timedelta(days=1):
        return "twice_daily"
    if interval <= timedelta(weeks=1):
        return "daily"
    return "every_2_days"


def test_interval(frequency: TestFrequency) -> timedelta:
    """The draft DAG's schedule for a test frequency."""
    try:
        return TEST_INTERVALS[frequency]
    except KeyError:
        raise ValueError(
            f"unknown test frequency {frequency!r}; expected one of {TEST_FREQUENCIES}"
        ) from None


def iso_duration(frequency: TestFrequency) -> str:
    """The test interval as an ISO 8601 duration (``PT4H``, ``PT12H``, ``P1D``, ``P2D``)."""
    test_interval(frequency)
    return _ISO_DURATIONS[frequency]


@dataclass(frozen=True)
class TestResources:
    """What one draft run is given: the job's estimate plus headroom for the draft environment."""

    __test__ = False  # not a pytest test class despite the name

    cpu_cores: float
    memory_gb: float
    estimated_runtime_minutes: int

    def as_dict(self) -> dict[str, float]:
        return {
            "cpu_cores": self.cpu_cores,
            "memory_gb": self.memory_gb,
            "estimated_runtime_minutes": self.estimated_runtime_minutes,
        }

    def kubernetes_resources(self, cpu_limit: bool = False) -> dict[str, dict[str, str]]:
        """Container requests/limits for these resources (see ``quantities.kubernetes_resources``)."""
        return kubernetes_resources(self.cpu_cores, self.memory_gb, cpu_limit=cpu_limit)


def calculate_test_resources(requirements: ResourceRequirements) -> TestResources:
    """Test resources: CPU and memory x1.1 (at least 1 core and 2 GiB), runtime x1.2 rounded up.

    No ``int()`` truncation: Kubernetes takes fractional cores, and truncating would erase the
    headroom for every job under 10 cores / 10 GiB.
    """
    cpu = round(requirements.cpu_cores * TEST_CPU_FACTOR, _NOISE_DECIMALS)
    memory = round(requirements.memory_gb * TEST_MEMORY_FACTOR, _NOISE_DECIMALS)
    runtime = math.ceil(round(requirements.estimated_runtime_minutes * TEST_RUNTIME_FACTOR, _NOISE_DECIMALS))
    return TestResources(
        cpu_cores=max(MIN_TEST_CPU_CORES, cpu),
        memory_gb=max(MIN_TEST_MEMORY_GB, memory),
        estimated_runtime_minutes=max(1, runtime),
    )


def evaluation_dates(start: datetime, test_execution_days: int) -> list[datetime]:
    """One evaluation date per day of the test window: ``start + 1 day`` .. ``start + N days``."""
    return [start + timedelta(days=day) for day in range(1, test_execution_days + 1)]


class DraftExecutionManager:
    """Plans a job's draft window: where, how often and with what resources it runs before promotion.

    :param draft_namespace: Kubernetes namespace of draft runs.
    :param base_criteria: the provider's promotion criteria; the job's ``promotion:`` overrides apply on top.
    """

    calculate_test_frequency = staticmethod(calculate_test_frequency)
    test_interval = staticmethod(test_interval)
    calculate_test_resources = staticmethod(calculate_test_resources)

    def __init__(
        self,
        *,
        draft_namespace: str = DEFAULT_DRAFT_NAMESPACE,
        base_criteria: PromotionCriteria = DEFAULT_CRITERIA,
    ) -> None:
        self.draft_namespace = draft_namespace
        self.base_criteria = base_criteria

    def window_ends_at(self, job: IngestionJob, start: datetime) -> datetime:
        """End of the test window that opens at ``start``."""
        return start + timedelta(days=job.criteria(self.base_criteria).test_execution_days)

    def create_plan(self, job: IngestionJob, start: datetime) -> DraftPlan:
        """The draft plan of ``job`` for a test window opening at ``start`` (timezone-aware)."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime")
        criteria = job.criteria(self.base_criteria)
        frequency = calculate_test_frequency(job.schedule_config.cron)
        return DraftPlan(
            job_id=job.job_id,
            draft_namespace=self.draft_namespace,
            test_frequency=frequency,
            test_interval=iso_duration(frequency),
            test_resources=calculate_test_resources(job.resource_requirements).as_dict(),
            test_execution_days=criteria.test_execution_days,
            evaluation_dates=evaluation_dates(start, criteria.test_execution_days),
            promotion_criteria=criteria,
        )
