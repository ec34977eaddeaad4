"""Recommendations: one per failed promotion criterion, per-run advice, and the tenant's feedback report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_sla_promotion.spec import IngestionJob, PromotionEvaluation

#: Every criterion the decision reports, in report order (the document's five plus the target namespace).
CRITERIA: tuple[str, ...] = (
    "min_successful_runs",
    "min_evaluation_period",
    "performance_variance",
    "sla_compliance",
    "overall_score",
    "target_namespace",
)

_METRIC_ADVICE = {
    "runtime_performance": "runs take longer than estimated: optimise the job or raise estimated_runtime_minutes",
    "resource_utilization": "resources are poorly sized (or usage is not reported): right-size cpu_cores and "
    "memory_gb, and report usage with job_report.report()",
    "data_quality": "data-quality checks fail, warn, or are missing: fix the failing checks and report them",
    "error_rate": "runs fail, retry, or drop records: fix the failures and the failed records",
    "sla_compliance": "runs miss the job's per-run SLA checks (max_runtime, data_freshness)",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "n/a"
    return "n/a" if value is None else str(value)


def criterion_recommendation(
    criterion: str, result: Mapping[str, Any], evaluation_data: Mapping[str, Any]
) -> dict[str, Any]:
    """What failed for one criterion, by how much, and what to change.

    Keys: ``criterion, issue, measured, threshold, recommendation, action``.
    """
    failed_runs = evaluation_data.get("failed_executions") or 0
    if criterion == "min_successful_runs":
        measured, threshold = result.get("actual"), result.get("required")
        extra = f" and fix the causes of the {failed_runs} failed run(s)" if failed_runs else ""
        return _rec(
            criterion,
            f"Insufficient successful test runs: {_fmt(measured)} of at least {_fmt(threshold)}",
            measured,
            threshold,
            f"Allow more time for draft testing to accumulate successful runs{extra}",
            "Wait for additional test executions",
        )
    if criterion == "min_evaluation_period":
        measured, threshold = result.get("actual_days"), result.get("required_days")
        return _rec(
            criterion,
            f"Evaluation period too short: runs span {_fmt(measured)} day(s), at least {_fmt(threshold)} needed",
            measured,
            threshold,
            "Keep the job in draft until its runs span the whole evaluation period",
            "Extend the draft testing window",
        )
    if criterion == "performance_variance":
        measured, threshold = result.get("actual"), result.get("max_allowed")
        return _rec(
            criterion,
            "High performance variance between runs: runtime coefficient of variation "
            f"{_fmt(measured)} exceeds {_fmt(threshold)}",
            measured,
            threshold,
            "Optimize job configuration or increase resource allocation",
            "Review resource requirements and data source performance",
        )
    if criterion == "sla_compliance":
        measured, threshold = result.get("actual"), result.get("min_required")
        details = evaluation_data.get("sla_compliance_results") or {}
        worst = [
            f"{metric} ({_fmt(info.get('compliance'))})"
            for metric, info in details.items()
            if isinstance(info, Mapping) and info.get("status") != "compliant"
        ]
        where = f"; below target: {', '.join(worst)}" if worst else ""
        return _rec(
            criterion,
            f"SLA compliance below threshold: {_fmt(measured)} < {_fmt(threshold)}{where}",
            measured,
            threshold,
            "Adjust SLA requirements or improve job performance",
            "Either relax SLA constraints or optimize job execution",
        )
    if criterion == "overall_score":
        measured, threshold = result.get("actual"), result.get("min_required")
        scores = evaluation_data.get("metric_scores") or {}
        weakest = sorted(
            ((score, metric) for metric, score in scores.items() if score is not None and score < 0.9),
        )[:2]
        advice = "; ".join(_METRIC_ADVICE.get(metric, metric) for _, metric in weakest)
        if failed_runs:
            advice = f"{failed_runs} failed run(s) count as 0" + (f"; {advice}" if advice else "")
        return _rec(
            criterion,
            f"Composite performance score below threshold: {_fmt(measured)} < {_fmt(threshold)}",
            measured,
            threshold,
            f"Improve the weakest metrics: {advice}" if advice else "Improve the per-run scores",
            "Check the per-run scores with `sla-promotion score` and address the lowest metrics",
        )
    if criterion == "target_namespace":
        measured, threshold = result.get("requested"), result.get("allowed")
        return _rec(
            criterion,
            f"Target namespace {measured!r} is not an allowed production namespace",
            measured,
            threshold,
            f"Set promotion.target_namespace to one of: {', '.join(threshold or []) or 'none configured'}",
            "Edit promotion.target_namespace in the job file, or ask the platform team to allow the namespace",
        )
    return _rec(criterion, f"Criterion {criterion} failed", None, None, "Review the criterion", "Review")


def _rec(
    criterion: str, issue: str, measured: Any, threshold: Any, recommendation: str, action: str
) -> dict[str, Any]:
    return {
        "criterion": criterion,
        "issue": issue,
        "measured": measured,
        "threshold": threshold,
        "recommendation": recommendation,
        "action": action,
    }


def improvement_recommendations(
    failed_criteria: list[str], criteria_results: Mapping[str, Any], evaluation_data: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One recommendation per failed criterion, in report order."""
    return [
        criterion_recommendation(criterion, criteria_results.get(criterion) or {}, evaluation_data)
        for criterion in failed_criteria
    ]


def _next_steps(failed: list[str]) -> list[str]:
    evidence_only = bool(failed) and set(failed) <= {"min_successful_runs", "min_evaluation_period"}
    if evidence_only:
        return [
            "Keep the job in draft: the evidence is too short, not the job's performance",
            "Let the draft runs continue until the required runs and evaluation period are reached",
            "Request re-evaluation once the draft window has been extended",
        ]
    steps = ["Review and implement the recommendations above"]
    if "target_namespace" in failed:
        steps.append("Fix promotion.target_namespace in the job file")
    steps += [
        "Continue draft testing with improved configuration",
        "Monitor job performance in draft namespace",
        "Request re-evaluation after improvements are made (sla-promotion resubmit)",
    ]
    return steps


def generate_feedback_report(
    job: IngestionJob, evaluation: PromotionEvaluation | Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The tenant's report of a rejected promotion, in the document's shape.

    ``evaluation`` is a ``PromotionEvaluation`` or a mapping with ``criteria_results`` and
    ``evaluation_data``. Keys: ``job_id, job_name, evaluation_summary, detailed_recommendations, next_steps``.
    """
    if isinstance(evaluation, Mapping):
        criteria_results: Mapping[str, Any] = evaluation.get("criteria_results") or {}
        evaluation_data: Mapping[str, Any] = evaluation.get("evaluation_data") or {}
    else:
        criteria_results, evaluation_data = evaluation.criteria_results, evaluation.evaluation_data
    failed = [
        criterion
        for criterion in CRITERIA
        if isinstance(criteria_results.get(criterion), Mapping)
        and not criteria_results[criterion].get("passed")
    ]
    return {
        "job_id": job.job_id,
        "job_name": job.job_name,
        "evaluation_summary": {
            "status": "promotion_rejected",
            "failed_criteria": failed,
            "evaluation_date": now.isoformat(),
            "successful_executions": evaluation_data.get("successful_executions"),
            "total_executions": evaluation_data.get("total_executions"),
            "overall_score": evaluation_data.get("overall_score"),
            "sla_compliance": evaluation_data.get("sla_compliance"),
        },
        "detailed_recommendations": improvement_recommendations(failed, criteria_results, evaluation_data),
        "next_steps": _next_steps(failed),
    }


def run_recommendations(evaluation_results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Advice for one draft run, from its five metric results (empty when every metric is fine)."""
    advice: list[str] = []
    runtime = evaluation_results.get("runtime_performance", {})
    if runtime.get("status") in ("acceptable", "poor"):
        advice.append(
            f"Runtime {_fmt(runtime.get('actual_runtime_minutes'))} min is "
            f"{_fmt(runtime.get('variance_percentage'))}% over the estimate of "
            f"{_fmt(runtime.get('estimated_runtime_minutes'))} min: optimise the job or raise "
            "resource_requirements.estimated_runtime_minutes"
        )
    resources = evaluation_results.get("resource_utilization", {})
    if resources.get("status") == "no_usage_data":
        advice.append("No resource usage reported: call job_report.report() at the end of the job")
    else:
        advice.extend(str(item) for item in resources.get("recommendations", []))
    quality = evaluation_results.get("data_quality", {})
    if quality.get("status") == "no_quality_checks":
        advice.append("No data-quality checks reported: report checks with job_report.report(checks=...)")
    elif quality.get("failed_checks") or quality.get("warning_checks"):
        advice.append(
            f"Data-quality checks: {quality.get('failed_checks', 0)} failed, "
            f"{quality.get('warning_checks', 0)} warning(s): fix the data or the checks"
        )
    errors = evaluation_results.get("error_rate", {})
    if errors.get("status") == "failed":
        advice.append("The run failed: see failure_reason and the pod log")
    elif errors.get("retried"):
        advice.append("The run succeeded only on a retry: make the job robust to transient errors")
    if (errors.get("failed_record_share") or 0) > 0.001:
        advice.append(
            f"{_fmt(100 * errors['failed_record_share'])}% of records failed: fix the record errors"
        )
    sla = evaluation_results.get("sla_compliance", {})
    for name, check in (sla.get("checks") or {}).items():
        if isinstance(check, Mapping) and not check.get("met"):
            advice.append(
                f"Per-run SLA {name} missed: {_fmt(check.get('actual'))} vs required {_fmt(check.get('required'))}"
            )
    return advice
