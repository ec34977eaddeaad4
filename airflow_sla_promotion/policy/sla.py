"""SLAComplianceTracker: compliance of a job's run history with its five SLA metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_sla_promotion.policy.planning import calculate_test_frequency, test_interval
from airflow_sla_promotion.policy.scoring import rounded
from airflow_sla_promotion.spec import SLA_METRICS, SLAReport, sort_runs

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from airflow_sla_promotion.spec import DraftExecution, IngestionJob

#: The document's status threshold for share-of-runs metrics (max_runtime, data_freshness, recovery).
COMPLIANT_SHARE = 0.9
RUNTIME_WINDOW = 10
SUCCESS_RATE_WINDOW = 20


def _no_data(**details: Any) -> dict[str, Any]:
    return {"compliance": 0.0, "status": "no_data", **details}


class SLAComplianceTracker:
    """Checks run history against the job's ``sla_requirements``.

    Each metric result carries ``compliance``: the ratio in [0, 1] the promotion decision averages.
    """

    sla_metrics = SLA_METRICS

    def track_sla_compliance(
        self, job: IngestionJob, execution_history: Iterable[DraftExecution], *, now: datetime | None = None
    ) -> SLAReport:
        """Compliance per declared metric, the overall compliance and the violations.

        Runs are sorted by ``(created_at, execution_id)``; runs before ``job.draft.started_at`` are left out.
        An empty history gives ``overall_compliance`` 0.0 and a violation, never a division by zero.
        """
        started = job.draft.started_at
        runs = sort_runs([run for run in execution_history if started is None or run.created_at >= started])
        declared = job.sla_requirements.declared()
        results: dict[str, dict[str, Any]] = {}
        for metric, required in declared.items():
            results[metric] = self._check_sla_metric(metric, required, runs, job, now)
        violations = [self._describe_violation(metric, results[metric]) for metric in results]
        violations = [message for message in violations if message]
        if not runs:
            overall = 0.0
            violations.insert(0, "no executions to evaluate")
        elif not results:
            overall = 1.0
        else:
            overall = rounded(sum(result["compliance"] for result in results.values()) / len(results))
        return SLAReport(
            job_id=job.job_id, compliance_results=results, overall_compliance=overall, violations=violations
        )

    def _check_sla_metric(
        self,
        metric: str,
        required: float,
        runs: list[DraftExecution],
        job: IngestionJob,
        now: datetime | None,
    ) -> dict[str, Any]:
        if metric == "max_runtime":
            return self._check_runtime_sla(required, runs)
        if metric == "success_rate":
            return self._check_success_rate_sla(required, runs)
        if metric == "data_freshness":
            return self._check_freshness_sla(required, runs)
        if metric == "availability":
            return self._check_availability_sla(required, runs, job, now)
        if metric == "error_recovery_time":
            return self._check_recovery_time_sla(required, runs, now)
        raise ValueError(f"unknown SLA metric {metric!r}")

    @staticmethod
    def _check_runtime_sla(max_runtime_minutes: float, runs: list[DraftExecution]) -> dict[str, Any]:
        recent = runs[-RUNTIME_WINDOW:]
        if not recent:
            return _no_data(max_runtime_minutes=max_runtime_minutes, avg_runtime_minutes=None, violations=0)
        compliant = [run for run in recent if run.actual_runtime_minutes <= max_runtime_minutes]
        rate = len(compliant) / len(recent)
        return {
            "compliance": rounded(rate),
            "compliance_rate": rounded(rate),
            "avg_runtime_minutes": rounded(sum(run.actual_runtime_minutes for run in recent) / len(recent)),
            "max_runtime_minutes": max_runtime_minutes,
            "executions_checked": len(recent),
            "violations": len(recent) - len(compliant),
            "status": "compliant" if rate >= COMPLIANT_SHARE else "violation",
        }

    @staticmethod
    def _check_success_rate_sla(required: float, runs: list[DraftExecution]) -> dict[str, Any]:
        recent = runs[-SUCCESS_RATE_WINDOW:]
        if not recent:
            return _no_data(
                actual_success_rate=None,
                required_success_rate=required,
                total_executions=0,
                successful_executions=0,
            )
        successful = sum(1 for run in recent if run.status == "completed")
        actual = successful / len(recent)
        return {
            "compliance": 1.0 if actual >= required else rounded(actual / required),
            "actual_success_rate": rounded(actual),
            "required_success_rate": required,
            "total_executions": len(recent),
            "successful_executions": successful,
            "status": "compliant" if actual >= required else "violation",
        }

    @staticmethod
    def _check_freshness_sla(max_lag_minutes: float, runs: list[DraftExecution]) -> dict[str, Any]:
        if not runs:
            return _no_data(max_data_lag_minutes=max_lag_minutes, runs_meeting=0, runs_without_data=0)
        # A failed run delivered no data, and a run that reported no lag has not shown it met the SLA.
        lags = [run.data_freshness_minutes for run in runs]
        met = sum(
            1
            for run, lag in zip(runs, lags, strict=True)
            if run.status == "completed" and lag is not None and lag <= max_lag_minutes
        )
        reported = [lag for lag in lags if lag is not None]
        share = met / len(runs)
        return {
            "compliance": rounded(share),
            "max_data_lag_minutes": max_lag_minutes,
            "avg_data_lag_minutes": rounded(sum(reported) / len(reported)) if reported else None,
            "runs_meeting": met,
            "runs_without_data": len(runs) - len(reported),
            "total_executions": len(runs),
            "status": "compliant" if share >= COMPLIANT_SHARE else "violation",
        }

    @staticmethod
    def availability_window(
        job: IngestionJob, runs: list[DraftExecution], interval: timedelta, now: datetime | None
    ) -> tuple[datetime, datetime] | None:
        """The window availability is measured over: the draft window when known, else the runs' span.

        With the draft window: ``draft.started_at`` .. the earlier of ``now`` and ``draft.window_ends_at``.
        Without it, the runs' span is widened so the first and the last run each sit on a due time.
        """
        started, window_end = job.draft.started_at, job.draft.window_ends_at
        if started is not None:
            ends = [moment for moment in (now, window_end) if moment is not None]
            end = min(ends) if ends else (runs[-1].created_at if runs else started)
            return (started, end) if end >= started else None
        if not runs:
            return None
        return runs[0].created_at - interval, runs[-1].created_at + interval / 2

    def _check_availability_sla(
        self, required: float, runs: list[DraftExecution], job: IngestionJob, now: datetime | None
    ) -> dict[str, Any]:
        interval = test_interval(calculate_test_frequency(job.schedule_config.cron))
        window = self.availability_window(job, runs, interval, now)
        # Due times are start + k * interval (k >= 1: a timedelta schedule runs at the end of each
        # interval). A due time is scheduled once half an interval has passed after it, and met when a
        # successful run started within half an interval of it, so scheduling delay never counts against
        # the job and a run still due at the window's end is not expected yet.
        half = interval / 2
        slots = 0 if window is None else int((window[1] - window[0] - half) // interval)
        if window is None or slots < 1:
            return _no_data(required_availability=required, scheduled_slots=0, successful_slots=0)
        start, end = window
        met_slots = set()
        for run in runs:
            if run.status != "completed":
                continue
            slot = int((run.created_at - start + half) // interval)
            if 1 <= slot <= slots:
                met_slots.add(slot)
        met = len(met_slots)
        actual = met / slots
        return {
            "compliance": min(1.0, rounded(actual / required)),
            "actual_availability": rounded(actual),
            "required_availability": required,
            "scheduled_slots": slots,
            "successful_slots": met,
            "slot_interval": str(interval),
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "status": "compliant" if actual >= required else "violation",
        }

    @staticmethod
    def _check_recovery_time_sla(
        max_minutes: float, runs: list[DraftExecution], now: datetime | None
    ) -> dict[str, Any]:
        if not runs:
            return _no_data(max_recovery_minutes=max_minutes, failures=0, recovered=0)
        limit = timedelta(minutes=max_minutes)
        failures = recovered = pending = 0
        recovery_minutes: list[float] = []
        # The first successful run after each position, found in one backward pass (not one scan per failure).
        next_success: list[DraftExecution | None] = [None] * len(runs)
        following: DraftExecution | None = None
        for index in range(len(runs) - 1, -1, -1):
            next_success[index] = following
            if runs[index].status == "completed":
                following = runs[index]
        for index, run in enumerate(runs):
            if run.status != "failed":
                continue
            failed_at = run.finished_at
            success = next_success[index]
            if success is None:
                if now is not None and now - failed_at < limit:
                    pending += 1  # still inside the recovery window: neither met nor missed yet
                    continue
                failures += 1
                continue
            failures += 1
            took = success.finished_at - failed_at
            recovery_minutes.append(took.total_seconds() / 60)
            if took <= limit:
                recovered += 1
        share = 1.0 if failures == 0 else recovered / failures
        return {
            "compliance": rounded(share),
            "max_recovery_minutes": max_minutes,
            "failures": failures,
            "recovered": recovered,
            "pending": pending,
            "max_observed_recovery_minutes": rounded(max(recovery_minutes)) if recovery_minutes else None,
            "status": "compliant" if share >= COMPLIANT_SHARE else "violation",
        }

    @staticmethod
    def _describe_violation(metric: str, result: Mapping[str, Any]) -> str | None:
        if result["status"] == "compliant":
            return None
        if result["status"] == "no_data":
            return f"{metric}: no runs to check"
        compliance = result["compliance"]
        if metric == "max_runtime":
            return (
                f"max_runtime: {result['violations']} of the last {result['executions_checked']} runs exceeded "
                f"{result['max_runtime_minutes']} min (compliance {compliance:.0%})"
            )
        if metric == "success_rate":
            return (
                f"success_rate: {result['actual_success_rate']:.0%} of the last {result['total_executions']} runs "
                f"succeeded, {result['required_success_rate']:.0%} required"
            )
        if metric == "data_freshness":
            return (
                f"data_freshness: {result['runs_meeting']} of {result['total_executions']} runs delivered data "
                f"within {result['max_data_lag_minutes']} min"
            )
        if metric == "availability":
            return (
                f"availability: {result['successful_slots']} of {result['scheduled_slots']} scheduled slots had a "
                f"successful run ({result['actual_availability']:.0%}, {result['required_availability']:.0%} "
                "required)"
            )
        return (
            f"error_recovery_time: {result['recovered']} of {result['failures']} failures were followed by a "
            f"success within {result['max_recovery_minutes']} min"
        )


def compliance_ratios(report: SLAReport) -> dict[str, float]:
    """The per-metric compliance ratio the promotion decision averages."""
    return {metric: float(result["compliance"]) for metric, result in report.compliance_results.items()}
