"""PromotionWorkflowManager: applies a promotion decision to the job file and the platform, over small ports."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from airflow_sla_promotion.config import ProviderSettings
from airflow_sla_promotion.config_store import ConfigStoreError, yaml_time
from airflow_sla_promotion.policy.decision import evidence_short

if TYPE_CHECKING:
    from ruamel.yaml.comments import CommentedMap

    from airflow_sla_promotion.config_store import StoreUpdate
    from airflow_sla_promotion.spec import IngestionJob, PromotionEvaluation

#: Label every draft pod carries; cleanup deletes the pods of a promoted job by it.
JOB_ID_LABEL = "sla-promotion/job-id"
#: Fields a promotion's ``resource_adjustments`` may set (absolute values, in ``resource_requirements``).
ADJUSTABLE_RESOURCES = ("cpu_cores", "memory_gb", "estimated_runtime_minutes")

#: History action that records Airflow-side steps still pending after a decision was written.
POST_STEPS_ACTION = "post_steps"


class PromotionException(Exception):
    """The decision cannot be applied; nothing was written unless the message says otherwise."""


# --- ports ---------------------------------------------------------------------------------------------


class JobStore(Protocol):
    """Where job files live (``config_store.JobConfigStore``)."""

    def load(self, job_id: str) -> IngestionJob: ...

    def update(
        self,
        job_id: str,
        mutate: Callable[[CommentedMap, IngestionJob], None],
        *,
        actor: str,
        action: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        record_unchanged: bool = False,
    ) -> StoreUpdate: ...


class AirflowActions(Protocol):
    """Airflow-side actions (the REST API hook in production)."""

    def pause_dag(self, dag_id: str) -> None: ...


class DraftCleanup(Protocol):
    """Deletes the leftover pods of a job's draft runs."""

    def delete_pods(self, namespace: str, label_selector: str) -> int: ...


class Notifier(Protocol):
    """Tells people: ``event`` is ``promoted``, ``rejected`` or ``extended``."""

    def notify(self, event: str, payload: dict[str, Any]) -> None: ...


#: Emits the promotion asset event: ``emit(job_id, extra)``.
AssetEmitter = Callable[[str, dict[str, Any]], None]


# --- plans ---------------------------------------------------------------------------------------------

PlanKind = Literal[
    "promote", "already_promoted", "reject", "already_rejected", "extend", "window_open", "resubmit"
]


@dataclass(frozen=True)
class _Plan:
    """What applying a decision to the job as it is now means."""

    kind: PlanKind
    extensions_used: int = 0
    window_ends_at: datetime | None = None
    exhausted: bool = False


class _PlanChanged(Exception):
    """Another writer changed the job between planning and the locked rewrite: plan again."""


@dataclass(frozen=True)
class _Step:
    name: str
    #: Run only once per decision (asset events, notifications); other steps are idempotent and are
    #: run again whenever the decision is applied again (pausing a paused DAG changes nothing).
    once: bool
    run: Callable[[], object] | None


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _iso(moment: datetime | None) -> str | None:
    return yaml_time(moment).isoformat() if moment is not None else None


class PromotionWorkflowManager:
    """Applies promotion decisions: promote, reject, or extend the draft window when only evidence was short.

    Every file change goes through the store (locked, atomic, validated, recorded); the Airflow-side
    steps come after the rewrite. Applying the same decision again changes nothing; a failed step is
    reported in the outcome's ``pending_steps``, recorded in the job's history and retried on the next
    application, which never rewrites the decision again.

    :param store: the job files (``JobConfigStore``).
    :param settings: provider options (draft namespace, allowlist, ``max_draft_extensions``).
    :param airflow: pauses the draft and promotion DAGs after a promotion; None: step skipped.
    :param cleanup: deletes leftover draft pods; None: step skipped.
    :param notifiers: told about every outcome.
    :param emit_asset: emits the promotion asset event; None: step skipped.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        settings: ProviderSettings | None = None,
        airflow: AirflowActions | None = None,
        cleanup: DraftCleanup | None = None,
        notifiers: Sequence[Notifier] = (),
        emit_asset: AssetEmitter | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or ProviderSettings()
        self.airflow = airflow
        self.cleanup = cleanup
        self.notifiers = tuple(notifiers)
        self.emit_asset = emit_asset

    # -- entry points

    def execute_promotion_workflow(
        self,
        evaluation: PromotionEvaluation,
        *,
        now: datetime,
        actor: str = "airflow",
        reason: str | None = None,
        allow_extension: bool = True,
    ) -> dict[str, Any]:
        """Apply ``evaluation``'s decision; return the outcome ``{status: promoted|rejected|extended, ...}``.

        :param now: the time recorded in the job file (``promoted_at``, history, extensions).
        :param actor: who applies it (``airflow`` for the promotion DAG, the user for the CLI).
        :param reason: why, for the history; defaults to the decision's message.
        :param allow_extension: False for a manual reject, which is always final.
        :raises PromotionException: the decision cannot be applied (nothing was written).
        """
        decision = evaluation.promotion_decision
        if decision.decision == "promote":
            return self._promote(evaluation, now=now, actor=actor, reason=reason)
        return self._reject_or_extend(
            evaluation, now=now, actor=actor, reason=reason, allow_extension=allow_extension
        )

    def resubmit(self, job_id: str, *, now: datetime, actor: str, reason: str) -> dict[str, Any]:
        """Back to draft with a fresh test window (after the tenant fixed what the feedback named).

        ``draft.started_at`` = now, ``window_ends_at`` = now + the job's ``test_execution_days``,
        extensions cleared, ``promotion_feedback`` removed (kept in the history entry).

        :raises PromotionException: the job is active (roll the promotion back instead).
        """
        job = self._load(job_id)
        days = job.criteria().test_execution_days
        window_ends_at = now + timedelta(days=days)

        def mutate(document: CommentedMap, current: IngestionJob) -> None:
            if current.status == "active":
                raise PromotionException(
                    f"job {job_id!r} is active; roll the promotion back instead of resubmitting it"
                )
            document["status"] = "draft"
            draft = self._draft_map(document)
            draft["started_at"] = yaml_time(now)
            draft["window_ends_at"] = yaml_time(window_ends_at)
            draft["extensions"] = []
            if "promotion_feedback" in document:
                del document["promotion_feedback"]

        details = {"previous_status": job.status, "previous_feedback": job.promotion_feedback}
        update = self._update(
            job_id, mutate, actor=actor, action="resubmit", reason=reason, details=details, now=now
        )
        return {
            "status": "resubmitted",
            "job_id": job_id,
            "changed": update.changed,
            "version": update.version,
            "started_at": _iso(now),
            "window_ends_at": _iso(window_ends_at),
            "message": f"job {job_id} is back in draft until {_iso(window_ends_at)}",
        }

    # -- promote

    def _promote(
        self, evaluation: PromotionEvaluation, *, now: datetime, actor: str, reason: str | None
    ) -> dict[str, Any]:
        job_id = evaluation.job_id
        decision = evaluation.promotion_decision
        job = self._load(job_id)
        target = decision.target_namespace or job.criteria().target_namespace
        self._check_target(job_id, target)
        adjustments = self._check_adjustments(job_id, decision.resource_adjustments)

        def plan_for(current: IngestionJob) -> _Plan:
            if current.status != "active":
                return _Plan("promote")
            resources = current.resource_requirements
            same = current.namespace == target and all(
                getattr(resources, name) == value for name, value in adjustments.items()
            )
            if not same:
                raise PromotionException(
                    f"job {job_id!r} is already active in {current.namespace!r} (promoted at "
                    f"{_iso(current.promoted_at)}); this decision (target {target!r}, resources "
                    f"{adjustments}) differs, so it is not applied. Roll the promotion back to promote again."
                )
            return _Plan("already_promoted")

        changes = {
            name: {"from": getattr(job.resource_requirements, name), "to": value}
            for name, value in adjustments.items()
        }

        def edit(document: CommentedMap, current: IngestionJob) -> None:
            document["namespace"] = target
            document["status"] = "active"
            document["promoted_at"] = yaml_time(now)
            resources = document["resource_requirements"]
            for name, value in adjustments.items():
                resources[name] = value
            if "promotion_feedback" in document:
                del document["promotion_feedback"]

        details = {
            "target_namespace": target,
            "resource_adjustments": changes,
            "confidence": decision.confidence,
            "evaluated_at": _iso(evaluation.evaluated_at),
            "decision_message": decision.message,
        }
        plan, current, update = self._apply(
            job,
            plan_for,
            edit,
            actor=actor,
            action="promote",
            reason=reason or decision.message,
            details=details,
            now=now,
            expect=("promote", "already_promoted"),
        )
        applied_now = plan.kind == "promote"
        outcome: dict[str, Any] = {
            "status": "promoted",
            "job_id": job_id,
            "changed": applied_now,
            "version": update.version if update else None,
            "target_namespace": target,
            "promoted_at": _iso(current.promoted_at),
            "resource_adjustments": changes if applied_now else {},
            "message": (
                f"job {job_id} promoted to {target}"
                if applied_now
                else f"job {job_id} was already promoted to {target}; nothing rewritten"
            ),
        }
        asset_extra = {
            "job_id": job_id,
            "namespace": target,
            "promoted_at": _iso(current.promoted_at),
            "resource_requirements": current.resource_requirements.model_dump(),
        }
        airflow, cleanup, emit_asset = self.airflow, self.cleanup, self.emit_asset
        selector = f"{JOB_ID_LABEL}={job_id}"
        draft_namespace = self.settings.draft_namespace
        steps = [
            _Step(
                "pause_draft_dag",
                once=False,
                run=(lambda: airflow.pause_dag(f"{job_id}__draft")) if airflow else None,
            ),
            _Step(
                "pause_promotion_dag",
                once=False,
                run=(lambda: airflow.pause_dag(f"{job_id}__promotion")) if airflow else None,
            ),
            _Step(
                "delete_draft_pods",
                once=False,
                run=(lambda: cleanup.delete_pods(draft_namespace, selector)) if cleanup else None,
            ),
            _Step(
                "asset_event",
                once=True,
                run=(lambda: emit_asset(job_id, asset_extra)) if emit_asset else None,
            ),
            self._notify_step("promoted", current, outcome),
        ]
        return self._finish(
            job_id, current, "promote", steps, outcome, applied_now=applied_now, actor=actor, now=now
        )

    def _check_target(self, job_id: str, target: str) -> None:
        allowed = self.settings.allowed_target_namespaces
        if target == self.settings.draft_namespace:
            raise PromotionException(
                f"cannot promote job {job_id!r}: the target namespace {target!r} is the draft namespace"
            )
        if target not in allowed:
            raise PromotionException(
                f"cannot promote job {job_id!r}: target namespace {target!r} is not in "
                f"[sla_promotion] allowed_target_namespaces ({', '.join(allowed) or 'empty'})"
            )

    @staticmethod
    def _check_adjustments(job_id: str, adjustments: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, adjustment in adjustments.items():
            if name not in ADJUSTABLE_RESOURCES:
                raise PromotionException(
                    f"cannot promote job {job_id!r}: unknown resource adjustment {name!r} "
                    f"(expected one of {', '.join(ADJUSTABLE_RESOURCES)})"
                )
            value = adjustment.get("recommended") if isinstance(adjustment, Mapping) else None
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise PromotionException(
                    f"cannot promote job {job_id!r}: resource adjustment {name!r} needs a positive "
                    f"'recommended' value, got {value!r}"
                )
            values[name] = value
        return values

    # -- reject / extend

    def _reject_or_extend(
        self,
        evaluation: PromotionEvaluation,
        *,
        now: datetime,
        actor: str,
        reason: str | None,
        allow_extension: bool,
    ) -> dict[str, Any]:
        job_id = evaluation.job_id
        decision = evaluation.promotion_decision
        failed = list(decision.failed_criteria)
        evidence_only = allow_extension and evidence_short(failed)
        max_extensions = self.settings.max_draft_extensions
        job = self._load(job_id)

        def plan_for(current: IngestionJob) -> _Plan:
            if current.status == "active":
                raise PromotionException(
                    f"job {job_id!r} is active (promoted at {_iso(current.promoted_at)}); a reject decision "
                    "is not applied to it. Roll the promotion back first."
                )
            if current.status == "promotion_rejected":
                return _Plan("already_rejected")
            used = len(current.draft.extensions)
            if not evidence_only:
                return _Plan("reject")
            if used >= max_extensions:
                return _Plan("reject", extensions_used=used, exhausted=True)
            window_ends_at = self._window_end(current)
            if window_ends_at is not None and window_ends_at > now:
                # Already extended for this evidence (or evaluated early): the window is still open.
                return _Plan("window_open", extensions_used=used, window_ends_at=window_ends_at)
            return _Plan("extend", extensions_used=used, window_ends_at=window_ends_at)

        plan = plan_for(job)
        if plan.kind in ("extend", "window_open"):
            return self._extend(evaluation, job, plan_for, now=now, actor=actor, reason=reason)
        return self._reject(evaluation, job, plan_for, now=now, actor=actor, reason=reason)

    def _reject(
        self,
        evaluation: PromotionEvaluation,
        job: IngestionJob,
        plan_for: Callable[[IngestionJob], _Plan],
        *,
        now: datetime,
        actor: str,
        reason: str | None,
    ) -> dict[str, Any]:
        job_id = evaluation.job_id
        decision = evaluation.promotion_decision
        feedback = _json_safe(evaluation.feedback_report or self._default_feedback(job, evaluation))

        def edit(document: CommentedMap, current: IngestionJob) -> None:
            document["status"] = "promotion_rejected"
            document["promotion_feedback"] = feedback

        details = {
            "failed_criteria": list(decision.failed_criteria),
            "evaluated_at": _iso(evaluation.evaluated_at),
            "decision_message": decision.message,
        }
        plan, current, update = self._apply(
            job,
            plan_for,
            edit,
            actor=actor,
            action="reject",
            reason=reason or decision.message,
            details=details,
            now=now,
            expect=("reject", "already_rejected"),
        )
        applied_now = plan.kind == "reject"
        outcome: dict[str, Any] = {
            "status": "rejected",
            "job_id": job_id,
            "changed": applied_now,
            "version": update.version if update else None,
            "failed_criteria": list(decision.failed_criteria),
            "recommendations": _json_safe(decision.recommendations),
            "feedback_report": current.promotion_feedback,
            "message": decision.message
            if applied_now
            else f"job {job_id} was already rejected; nothing rewritten",
        }
        if plan.exhausted:
            outcome["extensions_exhausted"] = True
            outcome["message"] += (
                f" (only evidence was short, but the draft window was already extended "
                f"{plan.extensions_used} time(s), the most allowed)"
            )
        steps = [self._notify_step("rejected", current, outcome)]
        return self._finish(
            job_id, current, "reject", steps, outcome, applied_now=applied_now, actor=actor, now=now
        )

    def _extend(
        self,
        evaluation: PromotionEvaluation,
        job: IngestionJob,
        plan_for: Callable[[IngestionJob], _Plan],
        *,
        now: datetime,
        actor: str,
        reason: str | None,
    ) -> dict[str, Any]:
        job_id = evaluation.job_id
        decision = evaluation.promotion_decision
        days = job.criteria().test_execution_days
        max_extensions = self.settings.max_draft_extensions
        failed = list(decision.failed_criteria)

        def edit(document: CommentedMap, current: IngestionJob) -> None:
            plan = plan_for(current)
            previous = plan.window_ends_at
            window_ends_at = max(previous or now, now) + timedelta(days=days)
            draft = self._draft_map(document)
            draft["window_ends_at"] = yaml_time(window_ends_at)
            if draft.get("extensions") is None:
                draft["extensions"] = []
            draft["extensions"].append(
                {
                    "extended_at": yaml_time(now),
                    "previous_window_ends_at": yaml_time(previous) if previous else None,
                    "window_ends_at": yaml_time(window_ends_at),
                    "reason": (
                        f"only evidence was short ({', '.join(failed)}); extension "
                        f"{plan.extensions_used + 1} of {max_extensions}"
                    ),
                }
            )

        details = {"failed_criteria": failed, "evaluated_at": _iso(evaluation.evaluated_at)}
        plan, current, update = self._apply(
            job,
            plan_for,
            edit,
            actor=actor,
            action="extend",
            reason=reason or decision.message,
            details=details,
            now=now,
            expect=("extend", "window_open"),
        )
        applied_now = plan.kind == "extend"
        extensions = current.draft.extensions
        window_ends_at = current.draft.window_ends_at if applied_now else plan.window_ends_at
        outcome: dict[str, Any] = {
            "status": "extended",
            "job_id": job_id,
            "changed": applied_now,
            "version": update.version if update else None,
            "failed_criteria": failed,
            "previous_window_ends_at": _iso(extensions[-1].previous_window_ends_at) if applied_now else None,
            "window_ends_at": _iso(window_ends_at),
            "extensions_used": len(extensions),
            "max_extensions": max_extensions,
            "message": (
                f"only evidence was short ({', '.join(failed)}): draft window of job {job_id} extended by "
                f"{days} day(s) to {_iso(window_ends_at)}"
                if applied_now
                else f"the draft window of job {job_id} is still open until {_iso(window_ends_at)}; nothing changed"
            ),
        }
        steps = [self._notify_step("extended", current, outcome)]
        return self._finish(
            job_id, current, "extend", steps, outcome, applied_now=applied_now, actor=actor, now=now
        )

    def _window_end(self, job: IngestionJob) -> datetime | None:
        if job.draft.window_ends_at is not None:
            return job.draft.window_ends_at
        if job.draft.started_at is not None:
            return job.draft.started_at + timedelta(days=job.criteria().test_execution_days)
        return None

    @staticmethod
    def _default_feedback(job: IngestionJob, evaluation: PromotionEvaluation) -> dict[str, Any]:
        decision = evaluation.promotion_decision
        return {
            "job_name": job.job_name,
            "evaluation_summary": {
                "status": "promotion_rejected",
                "failed_criteria": list(decision.failed_criteria),
                "evaluation_date": _iso(evaluation.evaluated_at),
                "message": decision.message,
            },
            "detailed_recommendations": list(decision.recommendations),
            "next_steps": [
                "Review and implement the recommendations above",
                "Resubmit the job (sla-promotion resubmit) to start a fresh draft window",
            ],
        }

    # -- shared mechanics

    def _load(self, job_id: str) -> IngestionJob:
        try:
            return self.store.load(job_id)
        except ConfigStoreError as error:
            raise PromotionException(f"cannot apply the decision for job {job_id!r}: {error}") from error

    def _update(
        self,
        job_id: str,
        mutate: Callable[[CommentedMap, IngestionJob], None],
        **kwargs: Any,
    ) -> StoreUpdate:
        try:
            return self.store.update(job_id, mutate, **kwargs)
        except ConfigStoreError as error:
            raise PromotionException(f"cannot apply the decision for job {job_id!r}: {error}") from error

    def _apply(
        self,
        job: IngestionJob,
        plan_for: Callable[[IngestionJob], _Plan],
        edit: Callable[[CommentedMap, IngestionJob], None],
        *,
        actor: str,
        action: str,
        reason: str | None,
        details: Mapping[str, Any],
        now: datetime,
        expect: tuple[PlanKind, ...],
    ) -> tuple[_Plan, IngestionJob, StoreUpdate | None]:
        """Plan on the job as read, then rewrite under the lock only if the fresh content plans the same.

        Returns the plan carried out, the job as it is now, and the store's answer (None: nothing written).
        """
        writes = {"promote", "reject", "extend"}
        for _ in range(5):
            plan = plan_for(job)
            if plan.kind not in expect:
                raise PromotionException(
                    f"job {job.job_id!r} changed while the decision was applied (now: {plan.kind}); try again"
                )
            if plan.kind not in writes:
                return plan, job, None

            def mutate(document: CommentedMap, current: IngestionJob, planned: _Plan = plan) -> None:
                if plan_for(current) != planned:
                    raise _PlanChanged
                edit(document, current)

            try:
                update = self._update(
                    job.job_id, mutate, actor=actor, action=action, reason=reason, details=details, now=now
                )
            except _PlanChanged:
                job = self._load(job.job_id)
                continue
            return plan, update.job, update
        raise PromotionException(
            f"job {job.job_id!r} kept changing while the decision was applied; try again"
        )

    @staticmethod
    def _draft_map(document: CommentedMap) -> Any:
        if document.get("draft") is None:
            document["draft"] = {}
        return document["draft"]

    def _notify_step(self, event: str, job: IngestionJob, outcome: dict[str, Any]) -> _Step:
        notifiers = self.notifiers
        if not notifiers:
            return _Step("notify", once=True, run=None)

        def run() -> None:
            payload = {
                "job_id": job.job_id,
                "job_name": job.job_name,
                "tenant": job.tenant,
                "owner": job.owner,
                **{key: value for key, value in outcome.items() if key not in ("steps", "pending_steps")},
            }
            failures = []
            for notifier in notifiers:
                try:
                    notifier.notify(event, payload)
                except Exception as error:
                    failures.append(f"{type(notifier).__name__}: {error}")
            if failures:
                raise RuntimeError("; ".join(failures))

        return _Step("notify", once=True, run=run)

    def _finish(
        self,
        job_id: str,
        job: IngestionJob,
        action: str,
        steps: list[_Step],
        outcome: dict[str, Any],
        *,
        applied_now: bool,
        actor: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Run the steps after the rewrite; record what is left pending so the next application retries it."""
        recorded = self._recorded_pending(job, action)
        statuses: dict[str, str] = {}
        errors: dict[str, str] = {}
        for step in steps:
            if step.run is None:
                statuses[step.name] = "skipped"
                continue
            if step.once and not applied_now and step.name not in (recorded or ()):
                statuses[step.name] = "already_done"
                continue
            try:
                step.run()
            except Exception as error:
                statuses[step.name] = "failed"
                errors[step.name] = f"{type(error).__name__}: {error}"
            else:
                statuses[step.name] = "done"
        pending = [name for name, status in statuses.items() if status == "failed"]
        if pending != (recorded or []) and (pending or recorded):
            try:
                self.store.update(
                    job_id,
                    lambda document, current: None,
                    actor=actor,
                    action=POST_STEPS_ACTION,
                    reason=f"steps after {action}: "
                    + (", ".join(pending) + " pending" if pending else "all done"),
                    details={"for_action": action, "pending_steps": pending, "errors": errors},
                    now=now,
                    record_unchanged=True,
                )
            except ConfigStoreError as error:
                errors["record_pending_steps"] = str(error)
        outcome["steps"] = statuses
        outcome["pending_steps"] = pending
        outcome["errors"] = errors
        if pending:
            outcome["message"] += (
                f"; pending: {', '.join(pending)} (retried when the decision is applied again)"
            )
        return outcome

    @staticmethod
    def _recorded_pending(job: IngestionJob, action: str) -> list[str] | None:
        """Steps recorded as pending after the job's latest ``action`` entry; None when none were recorded."""
        for entry in reversed(job.promotion_history):
            if entry.action == POST_STEPS_ACTION and entry.details.get("for_action") == action:
                return list(entry.details.get("pending_steps") or [])
            if entry.action != POST_STEPS_ACTION:
                return None
        return None
