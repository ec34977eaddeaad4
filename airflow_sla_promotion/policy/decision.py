"""PromotionDecisionEngine: all promotion criteria over a job's draft runs, and the promote/reject decision."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from airflow_sla_promotion.policy.evidence import RunEvidence, assess_evidence
from airflow_sla_promotion.policy.feedback import (
    CRITERIA,
    generate_feedback_report,
    improvement_recommendations,
)
from airflow_sla_promotion.policy.scoring import METRICS, PerformanceEvaluator, rounded, run_quality_score
from airflow_sla_promotion.policy.sla import SLAComplianceTracker
from airflow_sla_promotion.spec import (
    DEFAULT_DRAFT_NAMESPACE,
    DEFAULT_TARGET_NAMESPACE,
    PromotionDecision,
    PromotionEvaluation,
    sort_runs,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from airflow_sla_promotion.spec import DraftExecution, IngestionJob, PromotionCriteria

#: Failed criteria that mean "the evidence was short", not "the job performed badly": when only these
#: fail, the workflow extends the draft window instead of rejecting.
EVIDENCE_CRITERIA = frozenset({"min_successful_runs", "min_evaluation_period"})

#: Production efficiency the resource adjustments aim at: the middle of the ideal 70-90 % band.
TARGET_EFFICIENCY = 0.8
EFFICIENCY_BAND = (0.7, 0.9)
MIN_CPU_CORES = 0.1
MIN_MEMORY_GB = 0.25
#: The runtime estimate is adjusted when the observed p90 runtime exceeds it, or is under half of it.
RUNTIME_OVERESTIMATE_RATIO = 0.5


def evidence_short(failed_criteria: Iterable[str]) -> bool:
    """True when criteria failed and all of them are evidence criteria (extend rather than reject)."""
    failed = set(failed_criteria)
    return bool(failed) and failed <= EVIDENCE_CRITERIA


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Population standard deviation / mean; 0.0 for fewer than two values or a zero mean."""
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    if mean <= 0:
        return 0.0
    return statistics.pstdev(values, mu=mean) / mean


def p90(values: Sequence[float]) -> float:
    """90th percentile by nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _ceil_to(value: float, step: float) -> float:
    return round(math.ceil(round(value / step, 6)) * step, 6)


def _mean(values: Sequence[float]) -> float | None:
    return rounded(statistics.fmean(values)) if values else None


class PromotionDecisionEngine:
    """Decides whether a draft job is promoted to production.

    :param criteria: the criteria in force; None -> the job's own (provider defaults + ``promotion:`` overrides).
    :param allowed_target_namespaces: production namespaces a job may be promoted to.
    :param draft_namespace: the draft namespace, never a valid target.
    :param evaluator: scores each run (default: equal weights).
    :param tracker: SLA compliance over the runs.
    """

    def __init__(
        self,
        *,
        criteria: PromotionCriteria | None = None,
        allowed_target_namespaces: Sequence[str] = (DEFAULT_TARGET_NAMESPACE,),
        draft_namespace: str = DEFAULT_DRAFT_NAMESPACE,
        evaluator: PerformanceEvaluator | None = None,
        tracker: SLAComplianceTracker | None = None,
    ) -> None:
        self.criteria = criteria
        self.allowed_target_namespaces = tuple(allowed_target_namespaces)
        self.draft_namespace = draft_namespace
        self.evaluator = evaluator or PerformanceEvaluator()
        self.tracker = tracker or SLAComplianceTracker()

    def evaluate_promotion_eligibility(
        self, job: IngestionJob, draft_executions: Iterable[DraftExecution], *, now: datetime
    ) -> PromotionEvaluation:
        """Every criterion, the decision, and on reject the feedback report. ``now`` must be timezone-aware."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        criteria = self.criteria if self.criteria is not None else job.criteria()
        all_runs = list(draft_executions)
        started = job.draft.started_at
        runs = sort_runs([run for run in all_runs if started is None or run.created_at >= started])
        evaluation_data = self._collect_evaluation_data(job, runs, criteria, now)
        evaluation_data["ignored_executions"] = len(all_runs) - len(runs)
        criteria_results = self._check_promotion_criteria(evaluation_data, criteria)
        decision = self._make_promotion_decision(job, criteria, criteria_results, evaluation_data)
        feedback = None
        if decision.decision == "reject":
            feedback = generate_feedback_report(
                job, {"criteria_results": criteria_results, "evaluation_data": evaluation_data}, now
            )
        return PromotionEvaluation(
            job_id=job.job_id,
            evaluation_data=evaluation_data,
            criteria_results=criteria_results,
            promotion_decision=decision,
            feedback_report=feedback,
            evaluated_at=now,
        )

    def _collect_evaluation_data(
        self, job: IngestionJob, runs: list[DraftExecution], criteria: PromotionCriteria, now: datetime
    ) -> dict[str, Any]:
        successful = [run for run in runs if run.status == "completed"]
        evidence = assess_evidence(
            [RunEvidence(created_at=run.created_at, succeeded=run.status == "completed") for run in runs],
            criteria,
            job.draft.started_at,
        )
        # The lean per-run path (scores only): evaluate_draft_execution's details are not needed here.
        score_run, overall_score = self.evaluator.score_run, self.evaluator.overall_score
        scores = [score_run(run, job) for run in runs]
        # Composite: mean over all runs, a failed run counting 0.0.
        run_scores = [
            overall_score(run_metrics) if run.status == "completed" else 0.0
            for run, run_metrics in zip(runs, scores, strict=True)
        ]
        successful_scores = [
            run_metrics for run, run_metrics in zip(runs, scores, strict=True) if run.status == "completed"
        ]
        metric_scores = {
            metric: _mean([float(run_metrics[index]) for run_metrics in successful_scores])
            for index, metric in enumerate(METRICS)
        }
        runtimes = [run.actual_runtime_minutes for run in successful]
        cpu = [run.resource_usage.avg_cpu_utilization for run in successful if run.resource_usage is not None]
        memory = [
            run.resource_usage.peak_memory_usage_gb for run in successful if run.resource_usage is not None
        ]
        quality = [score for score in map(run_quality_score, successful) if score is not None]
        sla_report = self.tracker.track_sla_compliance(job, runs, now=now)
        return {
            "total_executions": len(runs),
            "successful_executions": len(successful),
            "failed_executions": len(runs) - len(successful),
            "success_rate": rounded(len(successful) / len(runs)) if runs else None,
            "avg_runtime_minutes": _mean(runtimes),
            "p90_runtime_minutes": p90(runtimes) if runtimes else None,
            # Over every counted run that ran, failed ones included (see docs/policy.md): a failure never
            # lowers it, and a pod that never started (runtime 0) is not a runtime.
            "runtime_variance": rounded(
                coefficient_of_variation(
                    [run.actual_runtime_minutes for run in runs if run.actual_runtime_minutes > 0]
                )
            ),
            "avg_cpu_utilization": _mean(cpu),
            "avg_memory_utilization": _mean(memory),
            "peak_memory_usage_gb": max(memory) if memory else None,
            "sla_compliance": sla_report.overall_compliance,
            "sla_compliance_results": sla_report.compliance_results,
            "sla_violations": sla_report.violations,
            "avg_data_quality_score": _mean(quality),
            "overall_score": rounded(statistics.fmean(run_scores)) if run_scores else 0.0,
            "metric_scores": metric_scores,
            "evaluation_period_days": evidence.evaluation_period_days,
            "counted_from": job.draft.started_at.isoformat() if job.draft.started_at else None,
            "first_execution_at": runs[0].created_at.isoformat() if runs else None,
            "last_execution_at": runs[-1].created_at.isoformat() if runs else None,
        }

    def _check_promotion_criteria(self, data: dict[str, Any], criteria: PromotionCriteria) -> dict[str, Any]:
        target = criteria.target_namespace
        results: dict[str, Any] = {
            "min_successful_runs": {
                "required": criteria.min_successful_runs,
                "actual": data["successful_executions"],
                "passed": data["successful_executions"] >= criteria.min_successful_runs,
            },
            "min_evaluation_period": {
                "required_days": criteria.min_evaluation_period_days,
                "actual_days": data["evaluation_period_days"],
                "passed": data["evaluation_period_days"] >= criteria.min_evaluation_period_days,
            },
            "performance_variance": {
                "max_allowed": criteria.max_performance_variance,
                "actual": data["runtime_variance"],
                "passed": data["runtime_variance"] <= criteria.max_performance_variance,
            },
            "sla_compliance": {
                "min_required": criteria.min_sla_compliance,
                "actual": data["sla_compliance"],
                "passed": data["sla_compliance"] >= criteria.min_sla_compliance,
            },
            "overall_score": {
                "min_required": criteria.min_overall_score,
                "actual": data["overall_score"],
                "passed": data["overall_score"] >= criteria.min_overall_score,
            },
            "target_namespace": {
                "requested": target,
                "allowed": [ns for ns in self.allowed_target_namespaces if ns != self.draft_namespace],
                "passed": target in self.allowed_target_namespaces and target != self.draft_namespace,
            },
        }
        results["overall_status"] = (
            "passed" if all(results[name]["passed"] for name in CRITERIA) else "failed"
        )
        return results

    def _make_promotion_decision(
        self,
        job: IngestionJob,
        criteria: PromotionCriteria,
        criteria_results: dict[str, Any],
        data: dict[str, Any],
    ) -> PromotionDecision:
        if criteria_results["overall_status"] == "passed":
            return PromotionDecision(
                decision="promote",
                target_namespace=criteria.target_namespace,
                resource_adjustments=self._calculate_resource_adjustments(job, data),
                confidence=self._calculate_promotion_confidence(criteria_results),
                message="Job meets all promotion criteria and is ready for production",
            )
        failed = [name for name in CRITERIA if not criteria_results[name]["passed"]]
        return PromotionDecision(
            decision="reject",
            failed_criteria=failed,
            recommendations=improvement_recommendations(failed, criteria_results, data),
            message=(
                f"Job failed {len(failed)} of {len(CRITERIA)} promotion criteria ({', '.join(failed)}). "
                "See recommendations for improvement."
            ),
        )

    @staticmethod
    def _calculate_promotion_confidence(criteria_results: dict[str, Any]) -> float:
        """0.5 x evidence + 0.5 x mean margin, in [0, 1] (formula in docs/policy.md)."""
        runs = criteria_results["min_successful_runs"]
        evidence = float(runs["actual"]) / (runs["actual"] + runs["required"])

        def relative(actual: float, bound: float, upper: float) -> float:
            room = upper - bound
            return 1.0 if room <= 0 else (actual - bound) / room

        score = criteria_results["overall_score"]
        sla = criteria_results["sla_compliance"]
        variance = criteria_results["performance_variance"]
        period = criteria_results["min_evaluation_period"]
        margins: list[float] = [
            relative(score["actual"], score["min_required"], 1.0),
            relative(sla["actual"], sla["min_required"], 1.0),
            1.0 if variance["max_allowed"] <= 0 else 1.0 - variance["actual"] / variance["max_allowed"],
            (period["actual_days"] - period["required_days"]) / max(1, period["required_days"]),
        ]
        margin = statistics.fmean(min(1.0, max(0.0, value)) for value in margins)
        confidence: float = round(min(1.0, max(0.0, 0.5 * evidence + 0.5 * margin)), 4)
        return confidence

    @staticmethod
    def _calculate_resource_adjustments(job: IngestionJob, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Absolute production resources from observed usage; empty when already right-sized.

        CPU and memory are adjusted only when the observed efficiency against the job's resources is
        outside 70-90 %: to usage / 0.8 (never below the observed peak), rounded up to millicores and
        MiB. The runtime estimate becomes the observed p90 runtime (whole minutes). Applying the result
        and deciding again over the same runs yields no further adjustment.
        """
        current = job.resource_requirements
        adjustments: dict[str, dict[str, Any]] = {}
        low, high = EFFICIENCY_BAND
        observed = (
            (
                "cpu_cores",
                data["avg_cpu_utilization"],
                current.cpu_cores,
                0.001,
                MIN_CPU_CORES,
                "average CPU use",
                "cores",
            ),
            (
                "memory_gb",
                data["peak_memory_usage_gb"],
                current.memory_gb,
                1 / 1024,
                MIN_MEMORY_GB,
                "peak memory",
                "GiB",
            ),
        )
        for field, usage, now_value, step, floor, label, unit in observed:
            if usage is None:
                continue
            efficiency = usage / now_value
            if low <= efficiency <= high:
                continue
            recommended = max(floor, _ceil_to(usage / TARGET_EFFICIENCY, step))
            if recommended == now_value:
                continue
            adjustments[field] = {
                "current": now_value,
                "recommended": recommended,
                "reason": (
                    f"{label} {usage:g} {unit} is {efficiency:.0%} of {now_value:g} {unit} (ideal 70-90%); "
                    f"{recommended:g} {unit} puts it at {usage / recommended:.0%}"
                ),
            }
        observed_p90 = data["p90_runtime_minutes"]
        if observed_p90 is not None:
            estimate = current.estimated_runtime_minutes
            recommended_runtime = float(max(1, math.ceil(round(observed_p90, 6))))
            outside = observed_p90 > estimate or observed_p90 < RUNTIME_OVERESTIMATE_RATIO * estimate
            if outside and recommended_runtime != estimate:
                adjustments["estimated_runtime_minutes"] = {
                    "current": estimate,
                    "recommended": recommended_runtime,
                    "reason": f"observed p90 runtime is {observed_p90:g} min against an estimate of {estimate:g} min",
                }
        return adjustments
