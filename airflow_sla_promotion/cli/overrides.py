"""CLI commands for audited manual overrides: promote, reject, rollback, resubmit, history."""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_sla_promotion.cli.common import CliError, emit

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from airflow_sla_promotion.config import ProviderSettings
    from airflow_sla_promotion.config_store import JobConfigStore
    from airflow_sla_promotion.spec import PromotionEvaluation

DEFAULT_AIRFLOW_CONN_ID = "airflow_api_default"

_EPILOG = (
    "Works offline on the job file (its folder is the jobs folder). Airflow-side steps (pausing or "
    "unpausing the job's draft and promotion DAGs) run only when the airflow_api connection is "
    "configured, e.g. AIRFLOW_CONN_AIRFLOW_API_DEFAULT; they are reported as skipped otherwise. "
    "Exit status: 0 done, 1 file changed but an Airflow-side step failed (see pending_steps), "
    "2 refused (message on stderr)."
)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands."""
    promote = _add(commands, "promote", "Promote a job to production by hand (audited).", _promote)
    promote.add_argument("--reason", required=True, help="why; recorded in the job's history")
    promote.add_argument(
        "--target-namespace", metavar="NS", help="production namespace (default: the decision's or the job's)"
    )
    promote.add_argument(
        "--decision",
        metavar="REPORT.json",
        type=Path,
        help="a promotion report (or `decide` answer) whose target namespace and resource adjustments to apply",
    )
    reject = _add(
        commands,
        "reject",
        "Reject a draft job by hand (audited; never extends the window).",
        _reject,
        airflow_steps=False,
    )
    reject.add_argument("--reason", required=True, help="why; becomes the job's promotion feedback")
    rollback = _add(
        commands, "rollback", "Restore the job file's previous version, byte for byte (audited).", _rollback
    )
    rollback.add_argument("--reason", help="why; recorded in the history folder")
    rollback.add_argument(
        "--to", metavar="VERSION", help="restore this saved version instead (see `history`)"
    )
    resubmit = _add(
        commands,
        "resubmit",
        "Put a rejected job back in draft with a fresh test window (audited).",
        _resubmit,
    )
    resubmit.add_argument("--reason", required=True, help="what was fixed; recorded in the job's history")
    _add(
        commands,
        "history",
        "Show a job's promotion history and its saved versions.",
        _history,
        airflow_steps=False,
    )


def _add(
    commands: argparse._SubParsersAction[Any],
    name: str,
    summary: str,
    handler: Any,
    *,
    airflow_steps: bool = True,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary, epilog=_EPILOG if airflow_steps else None
    )
    parser.add_argument("job_file", metavar="JOB_FILE", type=Path, help="the job's <job_id>.yaml")
    if airflow_steps:
        parser.add_argument(
            "--airflow-conn-id",
            default=DEFAULT_AIRFLOW_CONN_ID,
            help="connection of type airflow_api for the Airflow-side steps (default: %(default)s)",
        )
    parser.set_defaults(handler=handler)
    return parser


# --- handlers ------------------------------------------------------------------------------------------

Answer = tuple[dict[str, Any], int]


def _json_on_stdout(handler: Callable[[argparse.Namespace], Answer]) -> Callable[[argparse.Namespace], int]:
    """Print only the command's JSON answer on stdout (``main`` sends other output to stderr)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        answer, code = handler(args)
        emit(answer)
        return code

    return run


@_json_on_stdout
def _promote(args: argparse.Namespace) -> Answer:
    from airflow_sla_promotion.spec import PromotionDecision, PromotionEvaluation

    job_id, store, settings = _open(args.job_file)
    now = datetime.now(UTC)
    actor = _actor()
    report = _read_report(args.decision, job_id) if args.decision else None
    decision = report.promotion_decision if report else None
    evaluation = PromotionEvaluation(
        job_id=job_id,
        evaluation_data=report.evaluation_data if report else {},
        criteria_results=report.criteria_results if report else {},
        promotion_decision=PromotionDecision(
            decision="promote",
            target_namespace=args.target_namespace or (decision.target_namespace if decision else None),
            resource_adjustments=decision.resource_adjustments if decision else {},
            confidence=decision.confidence if decision else None,
            message=f"manual promotion by {actor}: {args.reason}",
        ),
        evaluated_at=report.evaluated_at if report else now,
    )
    airflow = _airflow_dags(args.airflow_conn_id)
    outcome = _run_workflow(store, settings, evaluation, airflow, now=now, actor=actor, reason=args.reason)
    return _report("promote", outcome, airflow=airflow)


@_json_on_stdout
def _reject(args: argparse.Namespace) -> Answer:
    from airflow_sla_promotion.spec import PromotionDecision, PromotionEvaluation

    job_id, store, settings = _open(args.job_file)
    now = datetime.now(UTC)
    actor = _actor()
    job = _load(store, job_id)
    evaluation = PromotionEvaluation(
        job_id=job_id,
        evaluation_data={},
        criteria_results={},
        promotion_decision=PromotionDecision(
            decision="reject", message=f"manual rejection by {actor}: {args.reason}"
        ),
        feedback_report={
            "job_name": job.job_name,
            "evaluation_summary": {
                "status": "promotion_rejected",
                "failed_criteria": [],
                "evaluation_date": now.isoformat(),
                "decided_by": actor,
                "reason": args.reason,
            },
            "detailed_recommendations": [],
            "next_steps": [
                "Address the reason given above",
                "Resubmit the job (sla-promotion resubmit) to start a fresh draft window",
            ],
        },
        evaluated_at=now,
    )
    outcome = _run_workflow(
        store, settings, evaluation, None, now=now, actor=actor, reason=args.reason, allow_extension=False
    )
    return _report("reject", outcome, airflow=None, airflow_steps=False)


@_json_on_stdout
def _rollback(args: argparse.Namespace) -> Answer:
    from airflow_sla_promotion.config_store import ConfigStoreError

    job_id, store, _ = _open(args.job_file)
    actor = _actor()
    try:
        if args.to:
            update = store.restore(job_id, args.to, actor=actor, reason=args.reason)
        else:
            update = store.rollback(job_id, actor=actor, reason=args.reason)
    except ConfigStoreError as error:
        raise CliError(str(error)) from None
    airflow = _airflow_dags(args.airflow_conn_id)
    outcome: dict[str, Any] = {
        "status": "rolled_back" if update.changed else "unchanged",
        "job_id": job_id,
        "job_status": update.job.status,
        "version": update.version,
        "message": (
            f"job {job_id} restored to its previous version (now {update.job.status}); "
            f"undo with another rollback"
            if update.changed
            else f"job {job_id} already has that content; nothing written"
        ),
        "steps": _sync_dags(job_id, update.job.status, airflow) if update.changed else {},
    }
    return _report("rollback", outcome, airflow=airflow)


@_json_on_stdout
def _resubmit(args: argparse.Namespace) -> Answer:
    from airflow_sla_promotion.workflow import PromotionException, PromotionWorkflowManager

    job_id, store, settings = _open(args.job_file)
    manager = PromotionWorkflowManager(store, settings=settings)
    try:
        outcome = manager.resubmit(job_id, now=datetime.now(UTC), actor=_actor(), reason=args.reason)
    except PromotionException as error:
        raise CliError(str(error)) from None
    airflow = _airflow_dags(args.airflow_conn_id)
    outcome["steps"] = _sync_dags(job_id, "draft", airflow)
    return _report("resubmit", outcome, airflow=airflow)


@_json_on_stdout
def _history(args: argparse.Namespace) -> Answer:
    from airflow_sla_promotion.config_store import ConfigStoreError

    job_id, store, _ = _open(args.job_file)
    answer: dict[str, Any] = {"job_id": job_id}
    try:
        job = store.load(job_id)
    except ConfigStoreError as error:
        answer["error"] = str(error)
        answer["entries"] = []
    else:
        answer["status"] = job.status
        answer["entries"] = [entry.model_dump(mode="json") for entry in job.promotion_history]
    answer["versions"] = [record.as_dict() for record in store.history(job_id)]
    return answer, 0


# --- helpers -------------------------------------------------------------------------------------------


def _open(job_file: Path) -> tuple[str, JobConfigStore, ProviderSettings]:
    """The job id, the store of the file's folder, and the provider settings; refuse a bad path."""
    from airflow_sla_promotion.config import load_settings
    from airflow_sla_promotion.config_store import (
        JOB_FILE_SUFFIX,
        InvalidJobIdError,
        JobConfigStore,
        check_job_id,
    )

    if job_file.suffix != JOB_FILE_SUFFIX:
        raise CliError(f"{job_file}: a job file is named <job_id>{JOB_FILE_SUFFIX}")
    try:
        job_id = check_job_id(job_file.stem)
    except InvalidJobIdError as error:
        raise CliError(f"{job_file}: {error}") from None
    if not job_file.is_file():
        raise CliError(f"{job_file}: no such job file")
    settings = load_settings()
    return job_id, JobConfigStore(job_file.parent, context=settings.validation_context), settings


def _load(store: JobConfigStore, job_id: str) -> Any:
    from airflow_sla_promotion.config_store import ConfigStoreError

    try:
        return store.load(job_id)
    except ConfigStoreError as error:
        raise CliError(str(error)) from None


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _read_report(path: Path, job_id: str) -> PromotionEvaluation:
    """A promotion report (XCom of ``promote``) or a ``decide`` answer, for the same job."""
    from pydantic import ValidationError

    from airflow_sla_promotion.spec import PromotionEvaluation

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CliError(f"{path}: cannot read the decision report: {error}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: a decision report is a JSON object")
    known = set(PromotionEvaluation.model_fields)
    fields = {key: value for key, value in data.items() if key in known}
    fields.setdefault("evaluation_data", {})
    fields.setdefault("criteria_results", {})
    fields.setdefault("evaluated_at", datetime.now(UTC))
    try:
        report = PromotionEvaluation.model_validate(fields)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CliError(f"{path}: not a promotion report: {where}: {first['msg']}") from None
    if report.job_id != job_id:
        raise CliError(f"{path}: the report is for job {report.job_id!r}, not {job_id!r}")
    return report


def _run_workflow(
    store: JobConfigStore,
    settings: ProviderSettings,
    evaluation: PromotionEvaluation,
    airflow: _ApiDags | None,
    **kwargs: Any,
) -> dict[str, Any]:
    from airflow_sla_promotion.workflow import PromotionException, PromotionWorkflowManager

    manager = PromotionWorkflowManager(store, settings=settings, airflow=airflow)
    try:
        return manager.execute_promotion_workflow(evaluation, **kwargs)
    except PromotionException as error:
        raise CliError(str(error)) from None


class _ApiDags:
    """Pauses and unpauses DAGs through the Airflow REST API (``AirflowApiHook``, imported lazily)."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    @functools.cached_property
    def hook(self) -> Any:
        from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook

        return AirflowApiHook(airflow_conn_id=self.conn_id, max_retries=1)

    def pause_dag(self, dag_id: str) -> None:
        self.hook.pause_dag(dag_id, paused=True)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.hook.pause_dag(dag_id, paused=paused)


def _airflow_dags(conn_id: str) -> _ApiDags | None:
    """The Airflow-side actions when the connection is configured, else None (steps are skipped)."""
    if not os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        try:
            from airflow.sdk import BaseHook

            BaseHook.get_connection(conn_id)
        except Exception:
            return None
    return _ApiDags(conn_id)


def _sync_dags(job_id: str, status: str, airflow: _ApiDags | None) -> dict[str, str]:
    """Pause the job's draft and promotion DAGs when it is active; unpause them when it is back in draft.

    Pausing survives in Airflow's DB, so a job rolled back or resubmitted to draft would otherwise stay
    paused from its earlier promotion.
    """
    if status not in ("draft", "active"):
        return {}
    paused = status == "active"
    steps: dict[str, str] = {}
    for dag_id in (f"{job_id}__draft", f"{job_id}__promotion"):
        name = f"{'pause' if paused else 'unpause'}:{dag_id}"
        if airflow is None:
            steps[name] = "skipped"
            continue
        try:
            airflow.set_paused(dag_id, paused)
        except Exception as error:
            steps[name] = f"failed: {type(error).__name__}: {error}"
        else:
            steps[name] = "done"
    return steps


def _report(
    command: str, outcome: dict[str, Any], *, airflow: _ApiDags | None, airflow_steps: bool = True
) -> Answer:
    """The answer, and exit status 1 (with a warning) when the file changed but an Airflow-side step failed."""
    steps = outcome.get("steps") or {}
    failed = [name for name, status in steps.items() if str(status).startswith("failed")]
    answer = {"command": command, **outcome}
    if airflow_steps:
        answer["airflow_api"] = (
            f"connection {airflow.conn_id}" if airflow else "not configured: Airflow-side steps skipped"
        )
    if failed:
        print(f"sla-promotion: warning: {command}: pending steps: {', '.join(failed)}", file=sys.stderr)
        return answer, 1
    return answer, 0
