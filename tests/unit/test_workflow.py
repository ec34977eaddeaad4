"""Tests of PromotionWorkflowManager over in-memory fakes of its Airflow, Kubernetes and notification ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_sla_promotion.config import ProviderSettings
from airflow_sla_promotion.config_store import JobConfigStore, load_job
from airflow_sla_promotion.spec import PromotionDecision, PromotionEvaluation
from airflow_sla_promotion.workflow import (
    JOB_ID_LABEL,
    PromotionException,
    PromotionWorkflowManager,
)

if TYPE_CHECKING:
    from pathlib import Path

JOB = """\
job_id: orders
job_name: Orders
tenant: orders
owner: orders-team@example.com
image: registry.example.com/orders/ingest:1.4
schedule_config:
  cron: "0 2 * * *"
resource_requirements:
  cpu_cores: 2   # first guess
  memory_gb: 4
  estimated_runtime_minutes: 30
promotion:
  test_execution_days: 5
draft:
  started_at: 2026-03-01T00:00:00+00:00
  window_ends_at: 2026-03-06T00:00:00+00:00
"""

WINDOW_END = datetime(2026, 3, 6, tzinfo=UTC)
NOW = WINDOW_END + timedelta(minutes=5)


class FakeAirflow:
    def __init__(self) -> None:
        self.paused: list[str] = []
        self.failing: set[str] = set()

    def pause_dag(self, dag_id: str) -> None:
        if dag_id in self.failing:
            raise ConnectionError(f"API unreachable while pausing {dag_id}")
        self.paused.append(dag_id)


class FakeCleanup:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def delete_pods(self, namespace: str, label_selector: str) -> int:
        self.calls.append((namespace, label_selector))
        return 2


class FakeNotifier:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fail = False

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("mail server down")
        self.events.append((event, payload))


class Ports:
    def __init__(self, folder: Path, settings: ProviderSettings | None = None) -> None:
        self.store = JobConfigStore(folder)
        self.airflow = FakeAirflow()
        self.cleanup = FakeCleanup()
        self.notifier = FakeNotifier()
        self.assets: list[tuple[str, dict[str, Any]]] = []
        self.manager = PromotionWorkflowManager(
            self.store,
            settings=settings or ProviderSettings(),
            airflow=self.airflow,
            cleanup=self.cleanup,
            notifiers=[self.notifier],
            emit_asset=lambda job_id, extra: self.assets.append((job_id, extra)),
        )
        self.path = folder / "orders.yaml"

    def apply(self, evaluation: PromotionEvaluation, now: datetime = NOW, **kwargs: Any) -> dict[str, Any]:
        return self.manager.execute_promotion_workflow(evaluation, now=now, **kwargs)


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    (tmp_path / "orders.yaml").write_text(JOB)
    return Ports(tmp_path)


def promote_decision(target: str | None = "prod-ingestion-ns", **adjust: float) -> PromotionEvaluation:
    return PromotionEvaluation(
        job_id="orders",
        evaluation_data={"successful_executions": 5},
        criteria_results={},
        promotion_decision=PromotionDecision(
            decision="promote",
            target_namespace=target,
            resource_adjustments={
                name: {"current": 0, "recommended": value, "reason": "right-size"}
                for name, value in adjust.items()
            },
            confidence=0.9,
            message="Job meets all promotion criteria and is ready for production",
        ),
        evaluated_at=NOW,
    )


def reject_decision(*failed: str) -> PromotionEvaluation:
    feedback = {
        "job_name": "Orders",
        "evaluation_summary": {"status": "promotion_rejected", "failed_criteria": list(failed)},
        "detailed_recommendations": [
            {"criterion": name, "issue": f"{name} failed", "measured": 1, "threshold": 2, "action": "fix"}
            for name in failed
        ],
        "next_steps": ["Review and implement the recommendations above"],
    }
    return PromotionEvaluation(
        job_id="orders",
        evaluation_data={},
        criteria_results={},
        promotion_decision=PromotionDecision(
            decision="reject",
            failed_criteria=list(failed),
            recommendations=[{"criterion": name} for name in failed],
            message=f"Job failed {len(failed)} promotion criteria.",
        ),
        feedback_report=feedback,
        evaluated_at=NOW,
    )


def versions(ports: Ports) -> int:
    return len(ports.store.history("orders"))


# --- promote -------------------------------------------------------------------------------------------


def test_promote_rewrites_the_job_then_runs_every_airflow_side_step(ports: Ports) -> None:
    outcome = ports.apply(promote_decision(cpu_cores=1.5, memory_gb=3, estimated_runtime_minutes=24))

    job = load_job(ports.path)
    assert (job.status, job.namespace, job.promoted_at) == ("active", "prod-ingestion-ns", NOW)
    resources = job.resource_requirements
    assert (resources.cpu_cores, resources.memory_gb, resources.estimated_runtime_minutes) == (1.5, 3, 24)
    assert "cpu_cores: 1.5 # first guess" in ports.path.read_text()  # the comment keeps its column
    [entry] = job.promotion_history
    assert (entry.action, entry.actor, entry.from_status, entry.to_status) == (
        "promote",
        "airflow",
        "draft",
        "active",
    )
    assert entry.details["resource_adjustments"]["cpu_cores"] == {"from": 2.0, "to": 1.5}

    assert ports.airflow.paused == ["orders__draft", "orders__promotion"]
    assert ports.cleanup.calls == [("draft-ingestion-ns", f"{JOB_ID_LABEL}=orders")]
    assert [job_id for job_id, _ in ports.assets] == ["orders"]
    assert ports.assets[0][1]["namespace"] == "prod-ingestion-ns"
    assert [event for event, _ in ports.notifier.events] == ["promoted"]
    assert ports.notifier.events[0][1]["owner"] == "orders-team@example.com"

    assert outcome["status"] == "promoted"
    assert outcome["changed"] is True
    assert outcome["pending_steps"] == []
    assert set(outcome["steps"].values()) == {"done"}


def test_same_promotion_applied_twice_changes_nothing_the_second_time(ports: Ports) -> None:
    decision = promote_decision(cpu_cores=1.5)
    ports.apply(decision)
    content = ports.path.read_bytes()

    outcome = ports.apply(decision, now=NOW + timedelta(hours=1))

    assert outcome["status"] == "promoted"
    assert outcome["changed"] is False
    assert ports.path.read_bytes() == content
    assert versions(ports) == 1
    assert len(ports.assets) == 1
    assert len(ports.notifier.events) == 1
    assert outcome["steps"]["asset_event"] == outcome["steps"]["notify"] == "already_done"


def test_a_different_promotion_of_an_active_job_is_refused(ports: Ports) -> None:
    ports.apply(promote_decision(cpu_cores=1.5))
    content = ports.path.read_bytes()
    with pytest.raises(PromotionException, match="already active"):
        ports.apply(promote_decision(cpu_cores=3))
    assert ports.path.read_bytes() == content


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("finance-prod", "not in \\[sla_promotion\\] allowed_target_namespaces"),
        ("draft-ingestion-ns", "is the draft namespace"),
    ],
)
def test_target_namespace_outside_the_allowlist_is_refused_and_nothing_written(
    tmp_path: Path, target: str, message: str
) -> None:
    (tmp_path / "orders.yaml").write_text(JOB)
    # Even an allowlist that names the draft namespace never lets a job be "promoted" into it.
    settings = ProviderSettings(allowed_target_namespaces=("prod-ingestion-ns", "draft-ingestion-ns"))
    ports = Ports(tmp_path, settings)
    with pytest.raises(PromotionException, match=message):
        ports.apply(promote_decision(target))
    assert (tmp_path / "orders.yaml").read_text() == JOB
    assert versions(ports) == 0
    assert ports.airflow.paused == []
    assert ports.notifier.events == []


def test_target_defaults_to_the_jobs_own_target_namespace(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(
        JOB.replace("  test_execution_days: 5\n", "  target_namespace: analytics-prod\n")
    )
    ports = Ports(
        tmp_path, ProviderSettings(allowed_target_namespaces=("prod-ingestion-ns", "analytics-prod"))
    )
    assert ports.apply(promote_decision(None))["target_namespace"] == "analytics-prod"
    assert load_job(ports.path).namespace == "analytics-prod"


@pytest.mark.parametrize(
    ("adjustments", "message"),
    [
        ({"gpu_count": {"recommended": 1}}, "unknown resource adjustment 'gpu_count'"),
        ({"cpu_cores": {"recommended": 0}}, "positive 'recommended' value"),
        ({"memory_gb": {"current": 4}}, "positive 'recommended' value"),
    ],
)
def test_bad_resource_adjustments_are_refused(
    ports: Ports, adjustments: dict[str, Any], message: str
) -> None:
    evaluation = promote_decision()
    evaluation.promotion_decision.resource_adjustments = adjustments
    with pytest.raises(PromotionException, match=message):
        ports.apply(evaluation)
    assert ports.path.read_text() == JOB


def test_error_before_the_rewrite_changes_nothing(ports: Ports) -> None:
    ports.path.write_text(JOB.replace("cpu_cores: 2", "cpu_cores: -2"))
    broken = ports.path.read_bytes()
    with pytest.raises(PromotionException, match="resource_requirements.cpu_cores"):
        ports.apply(promote_decision())
    assert ports.path.read_bytes() == broken
    assert ports.airflow.paused == []


def test_missing_job_is_a_promotion_exception(tmp_path: Path) -> None:
    with pytest.raises(PromotionException, match="no job file orders.yaml"):
        Ports(tmp_path).apply(promote_decision())


# --- partial failure -----------------------------------------------------------------------------------


def test_failed_airflow_step_is_reported_recorded_and_retried_without_rewriting_again(ports: Ports) -> None:
    ports.airflow.failing = {"orders__draft"}

    first = ports.apply(promote_decision(cpu_cores=1.5))

    assert first["status"] == "promoted"
    assert first["pending_steps"] == ["pause_draft_dag"]
    assert "ConnectionError" in first["errors"]["pause_draft_dag"]
    job = load_job(ports.path)
    assert job.status == "active"
    assert [e.action for e in job.promotion_history] == ["promote", "post_steps"]
    assert job.promotion_history[-1].details["pending_steps"] == ["pause_draft_dag"]
    # The other steps were not held back by the failed one.
    assert ports.airflow.paused == ["orders__promotion"]
    assert len(ports.assets) == len(ports.notifier.events) == 1

    ports.airflow.failing = set()
    second = ports.apply(promote_decision(cpu_cores=1.5))

    assert second["changed"] is False
    assert second["pending_steps"] == []
    assert second["steps"]["pause_draft_dag"] == "done"
    assert "orders__draft" in ports.airflow.paused
    history = load_job(ports.path).promotion_history
    assert [e.action for e in history] == ["promote", "post_steps", "post_steps"]
    assert history[-1].details["pending_steps"] == []
    assert len(ports.assets) == len(ports.notifier.events) == 1  # never sent twice

    content = ports.path.read_bytes()
    third = ports.apply(promote_decision(cpu_cores=1.5))
    assert third["pending_steps"] == []
    assert ports.path.read_bytes() == content


def test_failed_notification_is_retried_once_on_the_next_application(ports: Ports) -> None:
    ports.notifier.fail = True
    first = ports.apply(promote_decision())
    assert first["pending_steps"] == ["notify"]
    assert "mail server down" in first["errors"]["notify"]

    ports.notifier.fail = False
    second = ports.apply(promote_decision())
    assert second["steps"]["notify"] == "done"
    assert len(ports.notifier.events) == 1

    ports.apply(promote_decision())
    assert len(ports.notifier.events) == 1
    assert len(ports.assets) == 1


def test_ports_left_out_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(JOB)
    manager = PromotionWorkflowManager(JobConfigStore(tmp_path))
    outcome = manager.execute_promotion_workflow(promote_decision(), now=NOW)
    assert set(outcome["steps"].values()) == {"skipped"}
    assert outcome["pending_steps"] == []


# --- reject --------------------------------------------------------------------------------------------


def test_reject_writes_status_and_feedback_and_notifies(ports: Ports) -> None:
    evaluation = reject_decision("performance_variance", "min_successful_runs")

    outcome = ports.apply(evaluation)

    job = load_job(ports.path)
    assert job.status == "promotion_rejected"
    assert job.promotion_feedback == evaluation.feedback_report
    assert outcome["status"] == "rejected"
    assert outcome["failed_criteria"] == ["performance_variance", "min_successful_runs"]
    assert outcome["feedback_report"] == evaluation.feedback_report
    assert [event for event, _ in ports.notifier.events] == ["rejected"]
    assert ports.airflow.paused == []

    content = ports.path.read_bytes()
    again = ports.apply(evaluation)
    assert again["changed"] is False
    assert ports.path.read_bytes() == content
    assert len(ports.notifier.events) == 1


def test_reject_without_feedback_report_builds_one_from_the_decision(ports: Ports) -> None:
    evaluation = reject_decision("sla_compliance")
    evaluation.feedback_report = None
    ports.apply(evaluation)
    feedback = load_job(ports.path).promotion_feedback
    assert feedback is not None
    assert feedback["evaluation_summary"]["failed_criteria"] == ["sla_compliance"]
    assert feedback["detailed_recommendations"] == [{"criterion": "sla_compliance"}]


def test_reject_of_an_active_job_is_refused(ports: Ports) -> None:
    ports.apply(promote_decision())
    content = ports.path.read_bytes()
    with pytest.raises(PromotionException, match="is active"):
        ports.apply(reject_decision("sla_compliance"))
    assert ports.path.read_bytes() == content


# --- extend --------------------------------------------------------------------------------------------


def test_short_evidence_extends_the_window_instead_of_rejecting(ports: Ports) -> None:
    outcome = ports.apply(reject_decision("min_successful_runs", "min_evaluation_period"))

    job = load_job(ports.path)
    assert job.status == "draft"
    new_end = NOW + timedelta(days=5)  # the window had closed; it moves by test_execution_days from now
    assert job.draft.window_ends_at == new_end.replace(microsecond=0)
    [extension] = job.draft.extensions
    assert extension.previous_window_ends_at == WINDOW_END
    assert extension.window_ends_at == job.draft.window_ends_at
    assert "extension 1 of 2" in extension.reason
    assert outcome["status"] == "extended"
    assert outcome["extensions_used"] == 1
    assert outcome["max_extensions"] == 2
    assert [event for event, _ in ports.notifier.events] == ["extended"]


def test_the_same_extension_is_not_applied_twice(ports: Ports) -> None:
    evaluation = reject_decision("min_successful_runs")
    first = ports.apply(evaluation)
    content = ports.path.read_bytes()

    again = ports.apply(evaluation, now=NOW + timedelta(minutes=1))

    assert again["status"] == "extended"
    assert again["changed"] is False
    assert again["window_ends_at"] == first["window_ends_at"]
    assert "still open" in again["message"]
    assert ports.path.read_bytes() == content
    assert len(ports.notifier.events) == 1


def test_extensions_are_bounded_then_the_job_is_rejected(ports: Ports) -> None:
    evaluation = reject_decision("min_successful_runs")
    now = NOW
    for expected in (1, 2):
        outcome = ports.apply(evaluation, now=now)
        assert outcome["status"] == "extended"
        assert outcome["extensions_used"] == expected
        now = now + timedelta(days=6)  # past the new window's end

    final = ports.apply(evaluation, now=now)

    assert final["status"] == "rejected"
    assert final["extensions_exhausted"] is True
    assert "already extended 2 time(s)" in final["message"]
    assert load_job(ports.path).status == "promotion_rejected"


def test_max_extensions_is_configurable(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(JOB)
    ports = Ports(tmp_path, ProviderSettings(max_draft_extensions=0))
    assert ports.apply(reject_decision("min_successful_runs"))["status"] == "rejected"


def test_other_failed_criteria_reject_even_with_short_evidence(ports: Ports) -> None:
    outcome = ports.apply(reject_decision("min_successful_runs", "overall_score"))
    assert outcome["status"] == "rejected"


def test_a_manual_reject_never_extends(ports: Ports) -> None:
    outcome = ports.apply(reject_decision("min_successful_runs"), allow_extension=False)
    assert outcome["status"] == "rejected"


def test_extension_without_a_recorded_window_starts_from_now(tmp_path: Path) -> None:
    text = JOB.split("draft:\n")[0]
    (tmp_path / "orders.yaml").write_text(text)
    ports = Ports(tmp_path)
    outcome = ports.apply(reject_decision("min_evaluation_period"))
    assert outcome["status"] == "extended"
    assert load_job(ports.path).draft.window_ends_at == (NOW + timedelta(days=5)).replace(microsecond=0)


# --- resubmit ------------------------------------------------------------------------------------------


def test_resubmit_starts_a_fresh_window_and_keeps_the_feedback_in_history(ports: Ports) -> None:
    evaluation = reject_decision("sla_compliance")
    ports.apply(evaluation)
    later = NOW + timedelta(days=3)

    outcome = ports.manager.resubmit("orders", now=later, actor="alice", reason="fixed the SLA")

    job = load_job(ports.path)
    assert job.status == "draft"
    assert job.promotion_feedback is None
    assert job.draft.started_at == later
    assert job.draft.window_ends_at == later + timedelta(days=5)
    assert job.draft.extensions == []
    entry = job.promotion_history[-1]
    assert (entry.action, entry.actor, entry.reason) == ("resubmit", "alice", "fixed the SLA")
    assert entry.details["previous_feedback"] == evaluation.feedback_report
    assert outcome["status"] == "resubmitted"


def test_resubmit_of_an_active_job_is_refused(ports: Ports) -> None:
    ports.apply(promote_decision())
    with pytest.raises(PromotionException, match="roll the promotion back"):
        ports.manager.resubmit("orders", now=NOW, actor="alice", reason="again")
