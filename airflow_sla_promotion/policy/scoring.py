"""PerformanceEvaluator: the five metric scores of one draft run and its overall score."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_sla_promotion.policy.feedback import run_recommendations
from airflow_sla_promotion.spec import PerformanceEvaluation

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_sla_promotion.spec import DataQualityResults, DraftExecution, IngestionJob

METRICS: tuple[str, ...] = (
    "runtime_performance",
    "resource_utilization",
    "data_quality",
    "error_rate",
    "sla_compliance",
)
#: A run with at least this overall score is ``promotion_eligible`` (if it completed).
PROMOTION_ELIGIBLE_SCORE = 0.8
#: Score of a metric without evidence (no usage reported, no quality checks): never a pass.
NO_DATA_SCORE = 0.5
#: Score of a run that only succeeded on a retry, at most.
RETRIED_RUN_SCORE = 0.8
# Scores are rounded to this many decimals, so a mean that lands on a threshold compares as equal.
SCORE_DECIMALS = 6


def rounded(value: float) -> float:
    """A score or ratio rounded to ``SCORE_DECIMALS`` (float noise never decides a threshold)."""
    return round(value, SCORE_DECIMALS)


def runtime_band(performance_ratio: float) -> tuple[float, str]:
    """Score and status of actual/estimated runtime: <=1.0 excellent, <=1.2 good, <=1.5 acceptable."""
    if performance_ratio <= 1.0:
        return 1.0, "excellent"
    if performance_ratio <= 1.2:
        return 0.9, "good"
    if performance_ratio <= 1.5:
        return 0.7, "acceptable"
    return 0.4, "poor"


def efficiency_score(efficiency: float) -> float:
    """The document's ``_calculate_efficiency_score``: used/allocated, ideal 70-90 %."""
    if 0.7 <= efficiency <= 0.9:
        return 1.0
    if 0.5 <= efficiency < 0.7:
        return 0.8
    if 0.9 < efficiency <= 1.0:
        return 0.9
    if efficiency > 1.0:
        return 0.6
    return 0.4


def data_quality_band(results: DataQualityResults | None) -> dict[str, Any]:
    """The document's data-quality evaluation; no results or zero checks -> 0.5 ``no_quality_checks``."""
    checks = results.checks if results is not None else []
    if not checks:
        return {
            "score": NO_DATA_SCORE,
            "status": "no_quality_checks",
            "message": "No data quality checks reported"
            if results is None
            else "Zero data quality checks reported",
        }
    total = len(checks)
    passed = sum(1 for check in checks if check.status == "passed")
    failed = sum(1 for check in checks if check.status == "failed")
    warnings = sum(1 for check in checks if check.status == "warning")
    score, status = quality_checks_band(total, failed, warnings)
    return {
        "score": score,
        "status": status,
        "total_checks": total,
        "passed_checks": passed,
        "failed_checks": failed,
        "warning_checks": warnings,
        "pass_rate": passed / total,
    }


def quality_checks_band(total: int, failed: int, warnings: int) -> tuple[float, str]:
    """Score and status of ``total`` (> 0) quality checks of which ``failed`` failed and ``warnings`` warned."""
    if failed == 0:
        return (1.0, "excellent") if warnings == 0 else (0.8, "good")
    if failed / total <= 0.1:
        return 0.6, "acceptable"
    return 0.3, "poor"


def data_quality_score(results: DataQualityResults | None) -> float | None:
    """A run's ``data_quality_score`` from its check results; None when it reported no checks."""
    checks = results.checks if results is not None else None
    if not checks:
        return None
    failed = warnings = 0
    for check in checks:
        if check.status == "failed":
            failed += 1
        elif check.status == "warning":
            warnings += 1
    return quality_checks_band(len(checks), failed, warnings)[0]


def run_quality_score(execution: DraftExecution) -> float | None:
    """The run's data-quality score: from its check results, else the score it recorded, else None."""
    score = data_quality_score(execution.data_quality_results)
    return execution.data_quality_score if score is None else score


def failed_record_share(execution: DraftExecution) -> float | None:
    """records_failed / records_processed (processed counts every record handled); None if unreported."""
    if execution.records_failed is None or execution.records_processed is None:
        return None
    if execution.records_processed == 0:
        return 1.0 if execution.records_failed > 0 else 0.0
    return execution.records_failed / execution.records_processed


def record_error_band(share: float) -> float:
    """Score of a successful run by its share of failed records."""
    if share <= 0.001:
        return 1.0
    if share <= 0.01:
        return 0.9
    if share <= 0.05:
        return 0.7
    return 0.4


class RunScores(NamedTuple):
    """The five metric scores of one run, in ``METRICS`` order (no details: the fast path for many runs)."""

    runtime_performance: float
    resource_utilization: float
    data_quality: float
    error_rate: float
    sla_compliance: float


def runtime_score(execution: DraftExecution, job: IngestionJob) -> tuple[float, str, float]:
    """Score, status and actual/estimated ratio of the run's runtime; the estimate must be > 0."""
    estimated = job.resource_requirements.estimated_runtime_minutes
    if not estimated > 0:
        raise ValueError(
            f"job {job.job_id}: resource_requirements.estimated_runtime_minutes must be > 0, got {estimated}"
        )
    ratio = execution.actual_runtime_minutes / estimated
    score, status = runtime_band(ratio)
    return score, status, ratio


def resource_score(execution: DraftExecution) -> float:
    """Mean of the CPU and memory efficiency scores; ``NO_DATA_SCORE`` when no usage was reported."""
    usage = execution.resource_usage
    if usage is None:
        return NO_DATA_SCORE
    allocated = execution.allocated_resources
    return (
        efficiency_score(usage.avg_cpu_utilization / allocated.cpu_cores)
        + efficiency_score(usage.peak_memory_usage_gb / allocated.memory_gb)
    ) / 2


def quality_score(execution: DraftExecution) -> float:
    """The data-quality metric score: from the checks, else the recorded score, else ``NO_DATA_SCORE``."""
    score = run_quality_score(execution)
    return NO_DATA_SCORE if score is None else score


def error_score(execution: DraftExecution) -> float:
    """0.0 for a failed run; else by the share of failed records, at most ``RETRIED_RUN_SCORE`` if retried."""
    if execution.status == "failed":
        return 0.0
    share = failed_record_share(execution)
    score = 1.0 if share is None else record_error_band(share)
    if (execution.try_number or 1) > 1:
        score = min(score, RETRIED_RUN_SCORE)
    return score


def sla_checks(execution: DraftExecution, job: IngestionJob) -> dict[str, dict[str, Any]]:
    """The job's per-run SLA checks (max_runtime, data_freshness) against this run."""
    sla = job.sla_requirements
    checks: dict[str, dict[str, Any]] = {}
    if sla.max_runtime is not None:
        checks["max_runtime"] = {
            "required": sla.max_runtime,
            "actual": execution.actual_runtime_minutes,
            "met": execution.actual_runtime_minutes <= sla.max_runtime,
        }
    if sla.data_freshness is not None:
        lag = execution.data_freshness_minutes
        # A run that reported no data lag has not shown it met the freshness SLA.
        checks["data_freshness"] = {
            "required": sla.data_freshness,
            "actual": lag,
            "met": lag is not None and lag <= sla.data_freshness,
        }
    return checks


def sla_score(execution: DraftExecution, job: IngestionJob) -> float:
    """Share of the job's per-run SLA checks this run met; 1.0 when the job declares none."""
    sla = job.sla_requirements
    declared = met = 0
    if sla.max_runtime is not None:
        declared += 1
        met += execution.actual_runtime_minutes <= sla.max_runtime
    if sla.data_freshness is not None:
        declared += 1
        lag = execution.data_freshness_minutes
        met += lag is not None and lag <= sla.data_freshness
    return 1.0 if declared == 0 else met / declared


def _status_of(score: float) -> str:
    if score >= 1.0:
        return "excellent"
    if score >= 0.9:
        return "good"
    if score >= 0.7:
        return "acceptable"
    return "poor"


class PerformanceEvaluator:
    """Scores one draft run on the document's five metrics.

    :param weights: weight per metric for the overall score (unnamed metrics keep weight 1.0; equal by default).
    """

    evaluation_metrics = METRICS

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        resolved = dict.fromkeys(METRICS, 1.0)
        for metric, weight in (weights or {}).items():
            if metric not in resolved:
                raise ValueError(f"unknown metric {metric!r} in weights; expected one of {METRICS}")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of {metric} must be a non-negative number, got {weight!r}")
            resolved[metric] = float(weight)
        if sum(resolved.values()) <= 0:
            raise ValueError("at least one metric weight must be positive")
        self.weights = resolved
        self._ordered_weights = tuple(resolved[metric] for metric in METRICS)
        self._total_weight = sum(resolved.values())

    def score_run(self, execution: DraftExecution, job: IngestionJob) -> RunScores:
        """The five metric scores of one run, without details: what ``evaluate_draft_execution`` scores."""
        return RunScores(
            runtime_score(execution, job)[0],
            resource_score(execution),
            quality_score(execution),
            error_score(execution),
            sla_score(execution, job),
        )

    def overall_score(self, scores: Sequence[float]) -> float:
        """The weighted overall score of metric scores given in ``METRICS`` order, rounded, in [0, 1]."""
        weighted = sum(weight * score for weight, score in zip(self._ordered_weights, scores, strict=True))
        return min(1.0, max(0.0, rounded(weighted / self._total_weight)))

    def evaluate_draft_execution(self, execution: DraftExecution, job: IngestionJob) -> PerformanceEvaluation:
        """All five metrics, the weighted overall score, eligibility and advice for one run."""
        results = {
            "runtime_performance": self._evaluate_runtime_performance(execution, job),
            "resource_utilization": self._evaluate_resource_utilization(execution),
            "data_quality": self._evaluate_data_quality(execution),
            "error_rate": self._evaluate_error_rate(execution),
            "sla_compliance": self._evaluate_sla_compliance(execution, job),
        }
        overall = self._calculate_overall_score(results)
        return PerformanceEvaluation(
            execution_id=execution.execution_id,
            job_id=execution.job_id,
            evaluation_results=results,
            overall_score=overall,
            # A failed run is never eligible, whatever its other metrics say.
            promotion_eligible=execution.status == "completed" and overall >= PROMOTION_ELIGIBLE_SCORE,
            recommendations=run_recommendations(results),
        )

    def _calculate_overall_score(self, results: Mapping[str, Mapping[str, Any]]) -> float:
        return self.overall_score([float(results[metric]["score"]) for metric in METRICS])

    @staticmethod
    def _evaluate_runtime_performance(execution: DraftExecution, job: IngestionJob) -> dict[str, Any]:
        score, status, ratio = runtime_score(execution, job)
        return {
            "score": score,
            "status": status,
            "actual_runtime_minutes": execution.actual_runtime_minutes,
            "estimated_runtime_minutes": job.resource_requirements.estimated_runtime_minutes,
            "performance_ratio": rounded(ratio),
            "variance_percentage": rounded((ratio - 1.0) * 100),
        }

    @staticmethod
    def _evaluate_resource_utilization(execution: DraftExecution) -> dict[str, Any]:
        allocated = execution.allocated_resources
        usage = execution.resource_usage
        if usage is None:
            return {
                "score": NO_DATA_SCORE,
                "status": "no_usage_data",
                "message": "The run reported no resource usage",
                "recommendations": [],
            }
        cpu_efficiency = usage.avg_cpu_utilization / allocated.cpu_cores
        memory_efficiency = usage.peak_memory_usage_gb / allocated.memory_gb
        cpu_score = efficiency_score(cpu_efficiency)
        memory_score = efficiency_score(memory_efficiency)
        score = resource_score(execution)
        if cpu_efficiency > 0.9 or memory_efficiency > 0.9:
            status = "over_utilized"
        elif cpu_efficiency < 0.7 or memory_efficiency < 0.7:
            status = "under_utilized"
        else:
            status = "ideal"
        return {
            "score": score,
            "status": status,
            "cpu_efficiency": rounded(cpu_efficiency),
            "memory_efficiency": rounded(memory_efficiency),
            "cpu_score": cpu_score,
            "memory_score": memory_score,
            "recommendations": PerformanceEvaluator._get_resource_recommendations(
                cpu_efficiency, memory_efficiency
            ),
        }

    @staticmethod
    def _get_resource_recommendations(cpu_efficiency: float, memory_efficiency: float) -> list[str]:
        advice = []
        for name, efficiency, field in (
            ("CPU", cpu_efficiency, "cpu_cores"),
            ("Memory", memory_efficiency, "memory_gb"),
        ):
            if efficiency > 0.9:
                advice.append(
                    f"{name} use is {efficiency:.0%} of the allocation (ideal 70-90%): raise "
                    f"resource_requirements.{field}"
                )
            elif efficiency < 0.7:
                advice.append(
                    f"{name} use is {efficiency:.0%} of the allocation (ideal 70-90%): lower "
                    f"resource_requirements.{field}"
                )
        return advice

    @staticmethod
    def _evaluate_data_quality(execution: DraftExecution) -> dict[str, Any]:
        band = data_quality_band(execution.data_quality_results)
        if band["status"] == "no_quality_checks" and execution.data_quality_score is not None:
            # Only a recorded score: use it rather than the no-evidence default.
            score = execution.data_quality_score
            return {"score": score, "status": _status_of(score), "source": "recorded_score"}
        band["score"] = quality_score(execution)
        return band

    @staticmethod
    def _evaluate_error_rate(execution: DraftExecution) -> dict[str, Any]:
        share = failed_record_share(execution)
        retried = (execution.try_number or 1) > 1
        base: dict[str, Any] = {
            "records_processed": execution.records_processed,
            "records_failed": execution.records_failed,
            "failed_record_share": None if share is None else rounded(share),
            "try_number": execution.try_number,
            "retried": retried,
        }
        score = error_score(execution)
        if execution.status == "failed":
            return {"score": score, "status": "failed", "failure_reason": execution.failure_reason, **base}
        return {"score": score, "status": _status_of(score), **base}

    @staticmethod
    def _evaluate_sla_compliance(execution: DraftExecution, job: IngestionJob) -> dict[str, Any]:
        checks = sla_checks(execution, job)
        if not checks:
            return {"score": 1.0, "status": "no_per_run_sla", "checks": checks}
        score = sla_score(execution, job)
        return {"score": score, "status": "compliant" if score >= 1.0 else "violation", "checks": checks}
