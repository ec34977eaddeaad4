"""SLAComplianceTracker: the five metrics, their compliance ratios, empty history and order."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from airflow_sla_promotion.policy.sla import SLAComplianceTracker, compliance_ratios
from tests.unit.policy.factories import T0, make_job, make_run, make_runs

TRACKER = SLAComplianceTracker()
ALL_SLA = {
    "max_runtime": 30.0,
    "success_rate": 0.9,
    "data_freshness": 60.0,
    "availability": 0.9,
    "error_recovery_time": 120.0,
}


def test_empty_history_is_a_clear_zero_not_a_division_by_zero() -> None:
    report = TRACKER.track_sla_compliance(make_job(sla_requirements=ALL_SLA), [])
    assert report.overall_compliance == 0.0
    assert report.violations[0] == "no executions to evaluate"
    assert set(report.compliance_results) == set(ALL_SLA)
    for result in report.compliance_results.values():
        assert (result["compliance"], result["status"]) == (0.0, "no_data")


def test_no_declared_sla_is_full_compliance_when_runs_exist() -> None:
    report = TRACKER.track_sla_compliance(make_job(), make_runs(3))
    assert (report.overall_compliance, report.compliance_results, report.violations) == (1.0, {}, [])


def test_empty_history_without_sla_is_still_not_a_pass() -> None:
    assert TRACKER.track_sla_compliance(make_job(), []).overall_compliance == 0.0


def _runtime_history(over: int, total: int = 10) -> list:
    return [make_run(i, runtime=31.0 if i < over else 29.0) for i in range(total)]


def test_max_runtime_uses_the_last_ten_runs_and_the_ninety_percent_status() -> None:
    job = make_job(sla_requirements={"max_runtime": 30.0})
    one_over = TRACKER.track_sla_compliance(job, _runtime_history(1))
    result = one_over.compliance_results["max_runtime"]
    assert (result["compliance_rate"], result["violations"], result["status"]) == (0.9, 1, "compliant")
    two_over = TRACKER.track_sla_compliance(job, _runtime_history(2)).compliance_results["max_runtime"]
    assert (two_over["compliance"], two_over["status"]) == (0.8, "violation")
    # five slow runs followed by ten fast ones: only the last ten count
    older = TRACKER.track_sla_compliance(job, _runtime_history(5, total=15)).compliance_results["max_runtime"]
    assert (older["compliance"], older["executions_checked"]) == (1.0, 10)


def test_runtime_at_the_limit_is_compliant() -> None:
    job = make_job(sla_requirements={"max_runtime": 30.0})
    report = TRACKER.track_sla_compliance(job, make_runs(3, runtime=30.0))
    assert report.compliance_results["max_runtime"]["compliance"] == 1.0


def test_success_rate_ratio_is_actual_over_required_below_the_target() -> None:
    job = make_job(sla_requirements={"success_rate": 0.8})
    runs = [make_run(i, status="failed" if i < 2 else "completed") for i in range(10)]
    met = TRACKER.track_sla_compliance(job, runs).compliance_results["success_rate"]
    assert (met["actual_success_rate"], met["compliance"], met["status"]) == (0.8, 1.0, "compliant")
    runs[2] = make_run(2, status="failed")
    missed = TRACKER.track_sla_compliance(job, runs).compliance_results["success_rate"]
    assert missed["actual_success_rate"] == 0.7
    assert missed["compliance"] == pytest.approx(0.7 / 0.8)
    assert missed["status"] == "violation"


def test_success_rate_uses_the_last_twenty_runs() -> None:
    job = make_job(sla_requirements={"success_rate": 1.0})
    runs = [make_run(i, status="failed" if i < 5 else "completed") for i in range(25)]
    assert TRACKER.track_sla_compliance(job, runs).compliance_results["success_rate"]["compliance"] == 1.0


def test_data_freshness_is_the_share_of_runs_that_met_it() -> None:
    job = make_job(sla_requirements={"data_freshness": 60.0})
    runs = [
        make_run(0, data_freshness_minutes=60.0),
        make_run(1, data_freshness_minutes=61.0),
        make_run(2, data_freshness_minutes=None),  # no evidence: not met
        make_run(3, status="failed", data_freshness_minutes=10.0),  # delivered nothing
    ]
    result = TRACKER.track_sla_compliance(job, runs).compliance_results["data_freshness"]
    assert (result["compliance"], result["runs_meeting"], result["runs_without_data"]) == (0.25, 1, 1)
    assert result["status"] == "violation"


def _draft_job(**sla: float):  # type: ignore[no-untyped-def]
    return make_job(
        sla_requirements=sla,
        draft={"started_at": T0.isoformat(), "window_ends_at": (T0 + timedelta(days=7)).isoformat()},
    )


def test_availability_over_the_draft_window() -> None:
    # twice_daily draft runs: due every 12 h after the window opens, so 13 due runs in 7 days (the 14th
    # is due at the very end of the window and cannot have started yet).
    job = _draft_job(availability=0.9)
    runs = [make_run(i, created_at=T0 + timedelta(hours=12 * (i + 1), minutes=2)) for i in range(14)]
    result = TRACKER.track_sla_compliance(job, runs, now=T0 + timedelta(days=8)).compliance_results
    availability = result["availability"]
    assert (availability["scheduled_slots"], availability["successful_slots"]) == (13, 13)
    assert availability["compliance"] == 1.0
    # two missed slots: 11 / 13 = 0.846 < 0.9
    missing = [run for i, run in enumerate(runs) if i not in (3, 7)]
    availability = TRACKER.track_sla_compliance(job, missing, now=T0 + timedelta(days=8)).compliance_results[
        "availability"
    ]
    assert availability["successful_slots"] == 11
    assert availability["actual_availability"] == pytest.approx(11 / 13)
    assert availability["compliance"] == pytest.approx(11 / 13 / 0.9)
    assert availability["status"] == "violation"


def test_availability_window_ends_at_now_when_earlier() -> None:
    job = _draft_job(availability=1.0)
    runs = [make_run(i, created_at=T0 + timedelta(hours=12 * (i + 1))) for i in range(4)]
    result = TRACKER.track_sla_compliance(job, runs, now=T0 + timedelta(days=2, hours=6))
    assert result.compliance_results["availability"]["scheduled_slots"] == 4
    assert result.compliance_results["availability"]["compliance"] == 1.0


def test_failed_and_duplicate_runs_do_not_fill_slots() -> None:
    job = _draft_job(availability=1.0)
    runs = [
        make_run(0, created_at=T0 + timedelta(hours=12)),
        make_run(1, created_at=T0 + timedelta(hours=12, minutes=30)),  # second run in the same slot
        make_run(2, created_at=T0 + timedelta(hours=24), status="failed"),
    ]
    result = TRACKER.track_sla_compliance(job, runs, now=T0 + timedelta(hours=36)).compliance_results
    assert (result["availability"]["scheduled_slots"], result["availability"]["successful_slots"]) == (2, 1)


def test_availability_without_a_draft_window_spans_the_runs() -> None:
    job = make_job(sla_requirements={"availability": 1.0})
    runs = make_runs(5)
    result = TRACKER.track_sla_compliance(job, runs).compliance_results["availability"]
    assert (result["scheduled_slots"], result["successful_slots"], result["compliance"]) == (5, 5, 1.0)


def test_error_recovery_counts_failures_followed_by_a_success_in_time() -> None:
    job = make_job(sla_requirements={"error_recovery_time": 120.0})
    every = timedelta(hours=1)
    runs = [
        make_run(0, every=every, runtime=10.0),
        make_run(1, every=every, runtime=10.0, status="failed"),  # next success 60 min later: recovered
        make_run(2, every=every, runtime=10.0),
        make_run(3, every=every, runtime=10.0, status="failed"),  # 180 min to run 6's end: missed
        make_run(4, every=every, runtime=10.0, status="failed"),  # exactly 120 min: recovered
        make_run(5, every=every, runtime=10.0, status="failed"),
        make_run(6, every=every, runtime=10.0),
    ]
    result = TRACKER.track_sla_compliance(job, runs).compliance_results["error_recovery_time"]
    assert (result["failures"], result["recovered"]) == (4, 3)
    assert result["compliance"] == 0.75
    assert result["status"] == "violation"
    assert result["max_observed_recovery_minutes"] == 180.0


def test_error_recovery_without_failures_is_full() -> None:
    job = make_job(sla_requirements={"error_recovery_time": 30.0})
    result = TRACKER.track_sla_compliance(job, make_runs(3)).compliance_results["error_recovery_time"]
    assert (result["compliance"], result["failures"], result["status"]) == (1.0, 0, "compliant")


def test_a_recent_failure_is_pending_not_missed() -> None:
    job = make_job(sla_requirements={"error_recovery_time": 120.0})
    runs = [*make_runs(2), make_run(2, status="failed", runtime=10.0)]
    failed_end = runs[-1].finished_at
    pending = TRACKER.track_sla_compliance(job, runs, now=failed_end + timedelta(minutes=60))
    assert pending.compliance_results["error_recovery_time"]["pending"] == 1
    assert pending.compliance_results["error_recovery_time"]["compliance"] == 1.0
    late = TRACKER.track_sla_compliance(job, runs, now=failed_end + timedelta(minutes=121))
    assert late.compliance_results["error_recovery_time"]["compliance"] == 0.0


def test_overall_is_the_mean_of_the_declared_metrics() -> None:
    job = make_job(sla_requirements={"max_runtime": 30.0, "success_rate": 1.0})
    runs = [
        make_run(i, runtime=31.0 if i < 5 else 29.0, status="failed" if i == 9 else "completed")
        for i in range(10)
    ]
    report = TRACKER.track_sla_compliance(job, runs)
    ratios = compliance_ratios(report)
    assert ratios == {"max_runtime": 0.5, "success_rate": 0.9}
    assert report.overall_compliance == pytest.approx(0.7)
    assert len(report.violations) == 2


def test_order_and_runs_before_the_draft_window_do_not_matter() -> None:
    job = _draft_job(**ALL_SLA)
    runs = [make_run(i, runtime=25.0 + i, status="failed" if i % 4 == 3 else "completed") for i in range(12)]
    before = make_run(99, created_at=T0 - timedelta(days=1), status="failed", runtime=99.0)
    now = T0 + timedelta(days=7)
    expected = TRACKER.track_sla_compliance(job, runs, now=now)
    shuffled = runs + [before]
    random.Random(3).shuffle(shuffled)
    assert TRACKER.track_sla_compliance(job, shuffled, now=now) == expected
