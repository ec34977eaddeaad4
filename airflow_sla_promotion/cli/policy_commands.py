"""CLI commands over pure policy: plan, score, sla, decide, validate, schema."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from airflow_sla_promotion.cli.common import CliError, emit
from airflow_sla_promotion.spec import (
    DraftExecution,
    DraftPlan,
    IngestionJob,
    PerformanceEvaluation,
    PromotionEvaluation,
    SLAReport,
)

if TYPE_CHECKING:
    import argparse

    from airflow_sla_promotion.config import ProviderSettings

_RUNS = TypeAdapter(list[DraftExecution])

SCHEMAS: dict[str, Any] = {
    "job": IngestionJob,
    "execution": DraftExecution,
    "decision": PromotionEvaluation,
    "plan": DraftPlan,
    "score": PerformanceEvaluation,
    "sla": SLAReport,
}


# --- inputs --------------------------------------------------------------------------------------------


def provider_settings() -> ProviderSettings:
    """``[sla_promotion]`` settings through Airflow's config; the defaults when Airflow cannot be imported."""
    from airflow_sla_promotion.config import ProviderSettings

    try:
        from airflow_sla_promotion.config import load_settings

        return load_settings()
    except Exception:  # no usable Airflow installation/config: the CLI still answers with defaults
        return ProviderSettings()


def _job_errors(path: Path, settings: ProviderSettings) -> tuple[IngestionJob | None, list[str]]:
    """Load one job file; every problem as a ``<file>: <field.path>: <message>`` line."""
    from airflow_sla_promotion.config_store import JobFileError, load_job

    try:
        job = load_job(path, context=settings.validation_context)
    except JobFileError as error:
        return None, [str(problem) for problem in error.all_errors]
    problem = _semantic_problem(job)
    return (None, [f"{path}: {problem}"]) if problem else (job, [])


def _semantic_problem(job: IngestionJob) -> str | None:
    """What the model alone cannot see: a cron that never fires."""
    from airflow_sla_promotion.policy.planning import calculate_test_frequency

    try:
        calculate_test_frequency(job.schedule_config.cron)
    except ValueError as error:
        return f"schedule_config.cron: {error}"
    return None


def load_job_file(path: str, settings: ProviderSettings) -> IngestionJob:
    """The validated job of ``path``, or a ``CliError`` listing every problem."""
    job, errors = _job_errors(Path(path), settings)
    if job is None:
        raise CliError("\n".join(errors))
    return job


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def _read_json(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CliError(f"{path}: <file>: cannot read the file: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{path}: <json>: line {error.lineno}, column {error.colno}: {error.msg}") from None


def _validation_lines(path: str, error: ValidationError, prefix: tuple[int | str, ...] = ()) -> str:
    return "\n".join(
        f"{path}: {_location(prefix + tuple(item['loc']))}: {item['msg']}"
        for item in error.errors(include_url=False)
    )


def _check_job_ids(path: str, runs: list[DraftExecution], job: IngestionJob, single: bool) -> None:
    wrong = [
        f"{path}: {'job_id' if single else f'[{index}].job_id'}: {run.job_id!r} is not the job's id {job.job_id!r}"
        for index, run in enumerate(runs)
        if run.job_id != job.job_id
    ]
    if wrong:
        raise CliError("\n".join(wrong))


def load_run_file(path: str, job: IngestionJob) -> DraftExecution:
    """One DraftExecution object from a JSON file."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise CliError(f"{path}: <root>: expected one DraftExecution object, got {type(data).__name__}")
    try:
        run = DraftExecution.model_validate(data)
    except ValidationError as error:
        raise CliError(_validation_lines(path, error)) from None
    _check_job_ids(path, [run], job, single=True)
    return run


def load_runs_file(path: str, job: IngestionJob) -> list[DraftExecution]:
    """A JSON array of DraftExecution objects, in any order (an empty array is valid)."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise CliError(
            f"{path}: <root>: expected a JSON array of DraftExecution objects, got {type(data).__name__}"
        )
    try:
        runs = _RUNS.validate_python(data)
    except ValidationError as error:
        raise CliError(_validation_lines(path, error)) from None
    ids = [run.execution_id for run in runs]
    duplicates = sorted({execution_id for execution_id in ids if ids.count(execution_id) > 1})
    if duplicates:
        raise CliError(f"{path}: execution_id: duplicate execution ids: {', '.join(duplicates)}")
    _check_job_ids(path, runs, job, single=False)
    return runs


def parse_time(value: str | None, option: str) -> datetime:
    """An ISO 8601 time with a timezone (``Z`` accepted); the current time when not given."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CliError(f"{option}: {value!r} has no timezone; add one, e.g. {value}Z")
    return moment


def _namespaces(value: str) -> tuple[str, ...]:
    from airflow_sla_promotion.config import split_namespaces

    namespaces = split_namespaces(value)
    if not namespaces:
        raise CliError("--allowed-target-namespaces: give at least one namespace")
    return namespaces


# --- commands ------------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    from airflow_sla_promotion.policy.planning import DraftExecutionManager

    settings = provider_settings()
    job = load_job_file(args.job, settings)
    start = (
        job.draft.started_at
        if args.start is None and job.draft.started_at
        else parse_time(args.start, "--start")
    )
    plan = DraftExecutionManager(draft_namespace=settings.draft_namespace).create_plan(job, start)
    emit(plan, args.format)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from airflow_sla_promotion.policy.scoring import PerformanceEvaluator

    job = load_job_file(args.job, provider_settings())
    run = load_run_file(args.run, job)
    emit(PerformanceEvaluator().evaluate_draft_execution(run, job), args.format)
    return 0


def cmd_sla(args: argparse.Namespace) -> int:
    from airflow_sla_promotion.policy.sla import SLAComplianceTracker

    job = load_job_file(args.job, provider_settings())
    runs = load_runs_file(args.runs, job)
    now = parse_time(args.now, "--now")
    emit(SLAComplianceTracker().track_sla_compliance(job, runs, now=now), args.format)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from airflow_sla_promotion.policy.decision import PromotionDecisionEngine

    settings = provider_settings()
    allowed = (
        _namespaces(args.allowed_target_namespaces)
        if args.allowed_target_namespaces is not None
        else settings.allowed_target_namespaces
    )
    job = load_job_file(args.job, settings)
    runs = load_runs_file(args.runs, job)
    now = parse_time(args.now, "--now")
    engine = PromotionDecisionEngine(
        allowed_target_namespaces=allowed, draft_namespace=settings.draft_namespace
    )
    emit(engine.evaluate_promotion_eligibility(job, runs, now=now), args.format)
    return 0


def _validate_folder(folder: Path, settings: ProviderSettings) -> list[dict[str, Any]]:
    from airflow_sla_promotion.config_store import load_jobs

    jobs, errors = load_jobs(folder, context=settings.validation_context)
    files: dict[str, dict[str, Any]] = {}
    for job_id, job in jobs.items():
        path = folder / f"{job_id}.yaml"
        problem = _semantic_problem(job)
        files[str(path)] = {"path": str(path), "job_id": job_id, "errors": [problem] if problem else []}
    for error in errors:
        entry = files.setdefault(str(error.path), {"path": str(error.path), "job_id": None, "errors": []})
        entry["errors"].append(f"{error.field}: {error.message}")
    return [files[name] for name in sorted(files)]


def cmd_validate(args: argparse.Namespace) -> int:
    settings = provider_settings()
    results: list[dict[str, Any]] = []
    for name in args.paths:
        path = Path(name)
        if path.is_dir():
            results.extend(_validate_folder(path, settings))
        elif not path.exists():
            results.append({"path": name, "job_id": None, "errors": ["<file>: no such file or folder"]})
        else:
            job, lines = _job_errors(path, settings)
            prefix = f"{path}: "
            errors = [line.removeprefix(prefix) for line in lines]
            results.append({"path": str(path), "job_id": job.job_id if job else None, "errors": errors})
    for entry in results:
        entry["valid"] = not entry["errors"]
    valid = all(entry["valid"] for entry in results)
    emit({"valid": valid, "files": results}, args.format)
    for entry in results:
        for error in entry["errors"]:
            print(f"{entry['path']}: {error}", file=sys.stderr)
    return 0 if valid else 2


def cmd_schema(args: argparse.Namespace) -> int:
    emit(SCHEMAS[args.kind].model_json_schema(), args.format)
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands."""

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--format", choices=("json", "table"), default="json", help="json (default) or a table for people"
        )
        parser.set_defaults(handler=handler)
        return parser

    plan = command("plan", cmd_plan, "Draft plan of a job: test frequency, test resources, evaluation dates.")
    plan.add_argument("job", metavar="JOB.yaml")
    plan.add_argument(
        "--start",
        help="start of the test window (ISO 8601 with timezone; default: the job's draft.started_at, else now)",
    )

    score = command("score", cmd_score, "Score one draft run on the five metrics.")
    score.add_argument("job", metavar="JOB.yaml")
    score.add_argument("run", metavar="RUN.json", help="one DraftExecution object")

    sla = command("sla", cmd_sla, "SLA compliance of a run history.")
    sla.add_argument("job", metavar="JOB.yaml")
    sla.add_argument("runs", metavar="RUNS.json", help="JSON array of DraftExecution objects, any order")
    sla.add_argument("--now", help="evaluation time (ISO 8601 with timezone; default: now)")

    decide = command("decide", cmd_decide, "Promotion decision over a job's draft runs.")
    decide.add_argument("job", metavar="JOB.yaml")
    decide.add_argument("runs", metavar="RUNS.json", help="JSON array of DraftExecution objects, any order")
    decide.add_argument(
        "--allowed-target-namespaces",
        metavar="NS,...",
        help="production namespaces a job may be promoted to (default: [sla_promotion] allowed_target_namespaces)",
    )
    decide.add_argument("--now", help="evaluation time (ISO 8601 with timezone; default: now)")

    validate = command("validate", cmd_validate, "Validate job files or jobs folders; report every problem.")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="job file or jobs folder")

    schema = command("schema", cmd_schema, "JSON Schema of a job file, a draft run record or a decision.")
    schema.add_argument("kind", nargs="?", choices=tuple(SCHEMAS), default="job")
