"""Whether enough draft evidence exists: the rule shared by DraftRunsSensor and the decision engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from airflow_sla_promotion.spec import PromotionCriteria


@dataclass(frozen=True)
class RunEvidence:
    """The least the evidence rule needs to know of one draft run."""

    created_at: datetime
    succeeded: bool


@dataclass(frozen=True)
class EvidenceStatus:
    """How much evidence the counted draft runs give, against the criteria."""

    successful_runs: int
    total_runs: int
    evaluation_period_days: int
    required_successful_runs: int
    required_period_days: int

    @property
    def enough(self) -> bool:
        return (
            self.successful_runs >= self.required_successful_runs
            and self.evaluation_period_days >= self.required_period_days
        )


def counted(runs: Iterable[RunEvidence], started_at: datetime | None) -> list[RunEvidence]:
    """Runs that count: those started on or after the draft window's start, in time order."""
    kept = [run for run in runs if started_at is None or run.created_at >= started_at]
    return sorted(kept, key=lambda run: run.created_at)


def evaluation_period_days(created_ats: Iterable[datetime]) -> int:
    """Whole days between the earliest and latest run start (failed runs included); 0 for < 2 runs."""
    times = list(created_ats)
    if len(times) < 2:
        return 0
    return (max(times) - min(times)).days


def assess_evidence(
    runs: Iterable[RunEvidence], criteria: PromotionCriteria, started_at: datetime | None = None
) -> EvidenceStatus:
    """Count successful runs and the evaluation period of the runs that count."""
    kept = counted(runs, started_at)
    return EvidenceStatus(
        successful_runs=sum(1 for run in kept if run.succeeded),
        total_runs=len(kept),
        evaluation_period_days=evaluation_period_days(run.created_at for run in kept),
        required_successful_runs=criteria.min_successful_runs,
        required_period_days=criteria.min_evaluation_period_days,
    )
