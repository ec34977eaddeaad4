"""Pydantic models of the public vocabulary: the job file, one draft run's record, and policy answers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
)

if TYPE_CHECKING:
    from datetime import datetime

JOB_ID_PATTERN = r"^[a-z0-9]+([_-][a-z0-9]+)*$"
JOB_ID_MAX_LENGTH = 63
# RFC 1123 label: what Kubernetes accepts as a namespace name.
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

DEFAULT_DRAFT_NAMESPACE = "draft-ingestion-ns"
DEFAULT_TARGET_NAMESPACE = "prod-ingestion-ns"

JobStatus = Literal["draft", "active", "promotion_rejected"]
RunStatus = Literal["completed", "failed"]
CheckStatus = Literal["passed", "failed", "warning"]
SLAMetric = Literal["max_runtime", "success_rate", "data_freshness", "availability", "error_recovery_time"]
SLA_METRICS: tuple[SLAMetric, ...] = (
    "max_runtime",
    "success_rate",
    "data_freshness",
    "availability",
    "error_recovery_time",
)
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Namespace = Annotated[str, Field(pattern=NAMESPACE_PATTERN, max_length=63)]

#: Validation context key: when true, ``promotion:`` overrides may relax the provider's criteria.
ALLOW_RELAXED_CRITERIA = "allow_relaxed_criteria"


class _Model(BaseModel):
    """Base of every model: unknown keys are errors, so a typo never silently changes behaviour."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class ScheduleConfig(_Model):
    """When the job runs in production.

    :param cron: five-field cron expression of the production schedule (UTC).
    """

    cron: str

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(value.split(" ")) != 5 or not croniter.is_valid(value):
            raise ValueError(f"not a valid five-field cron expression: {value!r}")
        return value


class ResourceRequirements(_Model):
    """The job's own estimate of what one run needs."""

    cpu_cores: PositiveFloat
    memory_gb: PositiveFloat
    estimated_runtime_minutes: PositiveFloat


class SLARequirements(_Model):
    """Service levels the job promises; every metric is optional.

    :param max_runtime: minutes one run may take.
    :param success_rate: share of runs that must succeed, in (0, 1].
    :param data_freshness: minutes the produced data may lag behind the run's start.
    :param availability: share of scheduled slots that must end with a successful run, in (0, 1].
    :param error_recovery_time: minutes within which a failed run must be followed by a success.
    """

    max_runtime: PositiveFloat | None = None
    success_rate: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    data_freshness: PositiveFloat | None = None
    availability: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    error_recovery_time: PositiveFloat | None = None

    def declared(self) -> dict[SLAMetric, float]:
        """The metrics this job declares, in the document's order."""
        values = {metric: getattr(self, metric) for metric in SLA_METRICS}
        return {metric: float(value) for metric, value in values.items() if value is not None}


class PromotionCriteria(_Model):
    """The promotion criteria in force for one job (provider defaults, possibly tightened by the job)."""

    target_namespace: Namespace = DEFAULT_TARGET_NAMESPACE
    test_execution_days: PositiveInt = 7
    min_successful_runs: PositiveInt = 3
    min_evaluation_period_days: NonNegativeInt = 3
    min_overall_score: Fraction = 0.8
    max_performance_variance: NonNegativeFloat = 0.3
    min_sla_compliance: Fraction = 0.9


#: For each criterion, the direction in which an override tightens it.
TIGHTER_IS_HIGHER: dict[str, bool] = {
    "min_successful_runs": True,
    "min_evaluation_period_days": True,
    "min_overall_score": True,
    "min_sla_compliance": True,
    "max_performance_variance": False,
}
DEFAULT_CRITERIA = PromotionCriteria()


class PromotionOverrides(_Model):
    """A job's ``promotion:`` block: overrides of the provider's criteria (tighten-only by default)."""

    target_namespace: Namespace | None = None
    test_execution_days: PositiveInt | None = None
    min_successful_runs: PositiveInt | None = None
    min_evaluation_period_days: NonNegativeInt | None = None
    min_overall_score: Fraction | None = None
    max_performance_variance: NonNegativeFloat | None = None
    min_sla_compliance: Fraction | None = None

    @field_validator(*TIGHTER_IS_HIGHER, mode="after")
    @classmethod
    def _tighten_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        context = info.context or {}
        if value is None or context.get(ALLOW_RELAXED_CRITERIA) or info.field_name is None:
            return value
        field = info.field_name
        default = getattr(DEFAULT_CRITERIA, field)
        higher = TIGHTER_IS_HIGHER[field]
        if value < default if higher else value > default:
            bound = "below" if higher else "above"
            raise ValueError(
                f"{value} relaxes the provider's criterion ({bound} the default {default}); overrides may "
                "only tighten criteria unless [sla_promotion] allow_relaxed_criteria = True"
            )
        return value

    def apply(self, base: PromotionCriteria = DEFAULT_CRITERIA) -> PromotionCriteria:
        """The criteria in force: ``base`` with every set override applied."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


class DraftExtension(_Model):
    """One extension of the draft window, recorded in the job file."""

    extended_at: AwareDatetime
    previous_window_ends_at: AwareDatetime | None
    window_ends_at: AwareDatetime
    reason: str


class DraftState(_Model):
    """The job's draft window; written by the provider."""

    started_at: AwareDatetime | None = None
    window_ends_at: AwareDatetime | None = None
    extensions: list[DraftExtension] = Field(default_factory=list)


class HistoryEntry(_Model):
    """One change of the job file by the provider or an operator's override."""

    at: AwareDatetime
    action: str
    actor: str
    reason: str | None = None
    from_status: JobStatus | None = None
    to_status: JobStatus | None = None
    previous_version: str | None = Field(
        default=None, description="Name of the saved copy of the file as it was before this change."
    )
    details: dict[str, Any] = Field(default_factory=dict)


class IngestionJob(_Model):
    """One ingestion job: the content of ``<jobs_folder>/<job_id>.yaml``.

    Validate with ``IngestionJob.model_validate(data, context={"allow_relaxed_criteria": ...})``.
    """

    job_id: Annotated[str, Field(pattern=JOB_ID_PATTERN, max_length=JOB_ID_MAX_LENGTH)]
    job_name: Annotated[str, Field(min_length=1)]
    tenant: Annotated[str, Field(pattern=NAMESPACE_PATTERN, max_length=63)]
    description: str | None = None
    owner: str | None = None
    image: Annotated[str, Field(min_length=1)]
    cmds: list[str] = Field(default_factory=list)
    arguments: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    schedule_config: ScheduleConfig
    resource_requirements: ResourceRequirements
    sla_requirements: SLARequirements = Field(default_factory=SLARequirements)
    namespace: Namespace | None = Field(
        default=None, description="Where the job runs now; set to the target namespace on promotion."
    )
    status: JobStatus = "draft"
    promotion: PromotionOverrides = Field(default_factory=PromotionOverrides)
    # Written by the provider.
    draft: DraftState = Field(default_factory=DraftState)
    promoted_at: AwareDatetime | None = None
    promotion_feedback: dict[str, Any] | None = None
    promotion_history: list[HistoryEntry] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"invalid environment variable name: {name!r}")
        return value

    def criteria(self, base: PromotionCriteria = DEFAULT_CRITERIA) -> PromotionCriteria:
        """The promotion criteria in force for this job."""
        return self.promotion.apply(base)


class AllocatedResources(_Model):
    """What a run was given (the test resources in the draft namespace)."""

    cpu_cores: PositiveFloat
    memory_gb: PositiveFloat


class ResourceUsage(_Model):
    """What a run used, as the job reported it: average CPU in cores, peak memory in GiB."""

    avg_cpu_utilization: NonNegativeFloat
    peak_memory_usage_gb: NonNegativeFloat


class QualityCheck(_Model):
    """One data-quality check result reported by the job."""

    name: str
    status: CheckStatus
    details: str | None = None


class DataQualityResults(_Model):
    """The data-quality checks of one run."""

    checks: list[QualityCheck]


class DraftExecution(_Model):
    """One draft run's record (XCom ``draft_execution``)."""

    execution_id: Annotated[str, Field(min_length=1)]
    job_id: str
    status: RunStatus
    created_at: AwareDatetime
    actual_runtime_minutes: NonNegativeFloat
    allocated_resources: AllocatedResources
    resource_usage: ResourceUsage | None = None
    data_quality_results: DataQualityResults | None = None
    data_quality_score: Fraction | None = None
    data_freshness_minutes: NonNegativeFloat | None = None
    records_processed: NonNegativeInt | None = None
    records_failed: NonNegativeInt | None = None
    try_number: PositiveInt | None = None
    failure_reason: str | None = None
    pod_name: str | None = None
    pod_namespace: str | None = None

    @property
    def finished_at(self) -> datetime:
        """When the run ended (start plus runtime)."""
        from datetime import timedelta

        return self.created_at + timedelta(minutes=self.actual_runtime_minutes)


def sort_runs(runs: list[DraftExecution]) -> list[DraftExecution]:
    """Runs in the one order every computation uses: ``(created_at, execution_id)``."""
    return sorted(runs, key=lambda run: (run.created_at, run.execution_id))


# --- policy answers ---------------------------------------------------------------------------------
# Metric and criterion details keep the design document's keys; they are plain JSON-safe dicts.


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DraftPlan(_Answer):
    """Answer of ``DraftExecutionManager.create_plan`` (CLI ``plan``)."""

    job_id: str
    draft_namespace: str
    test_frequency: Literal["every_4_hours", "twice_daily", "daily", "every_2_days"]
    test_interval: str = Field(description="ISO 8601 duration, e.g. PT4H")
    test_resources: dict[str, float]
    test_execution_days: int
    evaluation_dates: list[AwareDatetime]
    promotion_criteria: PromotionCriteria


class PerformanceEvaluation(_Answer):
    """Answer of ``PerformanceEvaluator.evaluate_draft_execution`` (CLI ``score``)."""

    execution_id: str
    job_id: str
    evaluation_results: dict[str, dict[str, Any]]
    overall_score: Fraction
    promotion_eligible: bool
    recommendations: list[str]


class SLAReport(_Answer):
    """Answer of ``SLAComplianceTracker.track_sla_compliance`` (CLI ``sla``)."""

    job_id: str
    compliance_results: dict[str, dict[str, Any]]
    overall_compliance: Fraction
    violations: list[str]


class PromotionDecision(_Answer):
    """The decision part of a promotion evaluation; every key is always present."""

    decision: Literal["promote", "reject"]
    target_namespace: str | None = None
    resource_adjustments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    confidence: Fraction | None = None
    failed_criteria: list[str] = Field(default_factory=list)
    recommendations: list[dict[str, Any]] = Field(default_factory=list)
    message: str


class PromotionEvaluation(_Answer):
    """Answer of ``PromotionDecisionEngine.evaluate_promotion_eligibility`` (CLI ``decide``).

    ``feedback_report`` is the tenant-facing report of a reject (null on promote).
    """

    job_id: str
    evaluation_data: dict[str, Any]
    criteria_results: dict[str, Any]
    promotion_decision: PromotionDecision
    feedback_report: dict[str, Any] | None = None
    evaluated_at: AwareDatetime
