"""PerformanceEvaluator: the five metric scores of one draft run and its overall score."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_sla_promotion.policy.feedback import run_recommendations
from airflow_sla_promotion.spec import PerformanceEvaluation

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    if failed == 0:
        score, status = (1.0, "excellent") if warnings == 0 else (0.8, "good")
    elif failed / total <= 0.1:
        score, status = 0.6, "acceptable"
    else:
        score, status = 0.3, "poor"
    return {
        "score": score,
        "status": status,
        "total_checks": total,
        "passed_checks": passed,
        "failed_checks": failed,
        "warning_checks": warnings,
        "pass_rate": passed / total,
    }


def data_quality_score(results: DataQualityResults | None) -> float | None:
    """A run's ``data_quality_score`` from its check results; None when it reported no checks."""
    band = data_quality_band(results)
    return None if band["status"] == "no_quality_checks" else float(band["score"])


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
        total = sum(self.weights.values())
        weighted = sum(self.weights[metric] * float(results[metric]["score"]) for metric in METRICS)
        return min(1.0, max(0.0, rounded(weighted / total)))

    @staticmethod
    def _evaluate_runtime_performance(execution: DraftExecution, job: IngestionJob) -> dict[str, Any]:
        actual = execution.actual_runtime_minutes
        estimated = job.resource_requirements.estimated_runtime_minutes
        if not estimated > 0:
            raise ValueError(
                f"job {job.job_id}: resource_requirements.estimated_runtime_minutes must be > 0, got {estimated}"
            )
        ratio = actual / estimated
        score, status = runtime_band(ratio)
        return {
            "score": score,
            "status": status,
            "actual_runtime_minutes": actual,
            "estimated_runtime_minutes": estimated,
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
        if cpu_efficiency > 0.9 or memory_efficiency > 0.9:
            status = "over_utilized"
        elif cpu_efficiency < 0.7 or memory_efficiency < 0.7:
            status = "under_utilized"
        else:
            status = "ideal"
        return {
            "score": (cpu_score + memory_score) / 2,
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
        if execution.status == "failed":
            return {"score": 0.0, "status": "failed", "failure_reason": execution.failure_reason, **base}
        score = 1.0 if share is None else record_error_band(share)
        if retried:
            score = min(score, RETRIED_RUN_SCORE)
        return {"score": score, "status": _status_of(score), **base}

    @staticmethod
    def _evaluate_sla_compliance(execution: DraftExecution, job: IngestionJob) -> dict[str, Any]:
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
        if not checks:
            return {"score": 1.0, "status": "no_per_run_sla", "checks": checks}
        score = sum(1 for check in checks.values() if check["met"]) / len(checks)
        return {"score": score, "status": "compliant" if score >= 1.0 else "violation", "checks": checks}
