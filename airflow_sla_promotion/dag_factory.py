"""Builds each job file's draft, promotion and production DAGs, and a placeholder for a broken file."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_sla_promotion.config import load_settings
from airflow_sla_promotion.config_store import JOB_FILE_SUFFIX, JobFileError, load_jobs
from airflow_sla_promotion.policy.planning import DraftExecutionManager

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping

    from airflow.sdk import DAG

    from airflow_sla_promotion.config import ProviderSettings
    from airflow_sla_promotion.spec import DraftPlan, IngestionJob

log = logging.getLogger(__name__)

#: ``start_date`` of a job's DAGs while the job file holds no date of its own (a draft job whose window
#: has not been written yet, an active job without ``promoted_at``). A fixed date, never the clock at
#: parse time: a DAG's shape must not change from one parse to the next.
FALLBACK_START_DATE = datetime(2025, 1, 1, tzinfo=UTC)
#: How often the promotion DAG evaluates the draft runs.
EVALUATION_INTERVAL = timedelta(days=1)
#: Tag on every DAG this factory builds.
PROVIDER_TAG = "sla-promotion"

DRAFT_SUFFIX = "__draft"
PROMOTION_SUFFIX = "__promotion"
INVALID_SUFFIX = "__invalid"
DRAFT_TASK_ID = "draft_run"
SENSOR_TASK_ID = "wait_for_draft_runs"
PROMOTE_TASK_ID = "promote"
PRODUCTION_TASK_ID = "run"

_DAG_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def draft_dag_id(job_id: str) -> str:
    return f"{job_id}{DRAFT_SUFFIX}"


def promotion_dag_id(job_id: str) -> str:
    return f"{job_id}{PROMOTION_SUFFIX}"


def invalid_dag_id(path: str | os.PathLike[str]) -> str:
    """``<stem>__invalid`` for a broken job file; characters a DAG id cannot hold become ``_``."""
    stem = Path(path).name
    if stem.endswith(JOB_FILE_SUFFIX):
        stem = stem[: -len(JOB_FILE_SUFFIX)]
    return f"{_DAG_ID_UNSAFE.sub('_', stem) or 'job'}{INVALID_SUFFIX}"


def build_dags(
    jobs_folder: str | os.PathLike[str],
    *,
    settings: ProviderSettings | None = None,
    pod_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, DAG]:
    """Every DAG the job files in ``jobs_folder`` call for, by DAG id.

    - ``status: draft``: ``<job_id>__draft`` (the test schedule) and ``<job_id>__promotion``;
    - ``status: active``: ``<job_id>``, the production DAG;
    - ``status: promotion_rejected``: none (the feedback is in the job file);
    - a file that cannot be loaded: ``<stem>__invalid``, a task-less placeholder that says why.

    Reads only the jobs folder: no network, no metadata DB, nothing that depends on the clock.

    :param jobs_folder: folder of ``<job_id>.yaml`` files.
    :param settings: the provider's options; default: ``[sla_promotion]`` from Airflow's configuration.
    :param pod_kwargs: extra KubernetesPodOperator arguments for every ``draft_run`` and ``run`` task
        (``kubernetes_conn_id``, ``config_file``, ``deferrable``, ``volumes``/``volume_mounts``, ...).
    """
    settings = settings or load_settings()
    pod_kwargs = _checked_pod_kwargs(pod_kwargs)
    jobs, errors = load_jobs(jobs_folder, context=settings.validation_context)
    dags: dict[str, DAG] = {}
    planner = DraftExecutionManager(draft_namespace=settings.draft_namespace)
    for job in jobs.values():
        try:
            built = build_job_dags(
                job, planner=planner, jobs_folder=jobs_folder, pod_kwargs=pod_kwargs, settings=settings
            )
        except Exception as error:
            # A valid file the DAGs still cannot be built from (e.g. an active job without a
            # namespace) is reported like a broken file instead of failing the whole DAG file.
            log.warning("cannot build the DAGs of job %s: %s", job.job_id, error)
            path = Path(jobs_folder) / f"{job.job_id}{JOB_FILE_SUFFIX}"
            errors.append(
                JobFileError(path, "<dag>", f"cannot build its DAGs: {type(error).__name__}: {error}")
            )
            continue
        for dag in built:
            dags[dag.dag_id] = dag
    for path, file_errors in _by_file(errors).items():
        placeholder = build_invalid_dag(path, file_errors)
        dags[placeholder.dag_id] = placeholder
    log.debug("built %d DAGs from %d jobs and %d broken files", len(dags), len(jobs), len(errors))
    return dags


def build_job_dags(
    job: IngestionJob,
    *,
    planner: DraftExecutionManager | None = None,
    jobs_folder: str | os.PathLike[str] | None = None,
    pod_kwargs: Mapping[str, Any] | None = None,
    settings: ProviderSettings | None = None,
) -> list[DAG]:
    """The DAGs of one valid job, according to its status.

    :param settings: the ``[sla_promotion]`` options for the run tasks; default: read by each task.
    """
    planner = planner or DraftExecutionManager()
    # The job's spec, as shown in each of its DAGs' docs, is rendered once per job.
    spec = _spec_text(job)
    if job.status == "draft":
        plan = planner.create_plan(job, job.draft.started_at or FALLBACK_START_DATE)
        return [
            build_draft_dag(job, plan, jobs_folder, pod_kwargs=pod_kwargs, settings=settings, spec_text=spec),
            build_promotion_dag(job, plan, jobs_folder, pod_kwargs=pod_kwargs, spec_text=spec),
        ]
    if job.status == "active":
        return [
            build_production_dag(job, jobs_folder, pod_kwargs=pod_kwargs, settings=settings, spec_text=spec)
        ]
    return []


def draft_window(job: IngestionJob, plan: DraftPlan) -> tuple[datetime, datetime | None]:
    """``(start, end)`` of the job's test window as its DAGs see it.

    The window is the job file's ``draft.started_at`` .. ``draft.window_ends_at`` (the end defaults to
    start + ``test_execution_days``). Before a start is written (``sla-promotion resubmit`` writes
    one), the DAGs start at ``FALLBACK_START_DATE`` and end with ``window_ends_at`` if an extension
    wrote it, else never; the next parse of a rewritten file bounds the DAGs.
    """
    started_at = job.draft.started_at
    if started_at is None:
        return FALLBACK_START_DATE, job.draft.window_ends_at
    return started_at, job.draft.window_ends_at or started_at + timedelta(days=plan.test_execution_days)


def build_draft_dag(
    job: IngestionJob,
    plan: DraftPlan,
    jobs_folder: str | os.PathLike[str] | None = None,
    *,
    pod_kwargs: Mapping[str, Any] | None = None,
    settings: ProviderSettings | None = None,
    spec_text: str | None = None,
) -> DAG:
    """``<job_id>__draft``: DraftRunOperator in the draft namespace on the plan's test interval."""
    from airflow.sdk import DAG, DeltaTriggerTimetable

    from airflow_sla_promotion.operators.draft_run import DraftRunOperator

    start, end = draft_window(job, plan)
    interval = DraftExecutionManager.test_interval(plan.test_frequency)
    with DAG(
        dag_id=draft_dag_id(job.job_id),
        description=_description(job, f"draft runs every {plan.test_interval} in {plan.draft_namespace}"),
        # Trigger timetables, explicitly: a run fires at its time, not one interval later, whatever
        # [scheduler] create_cron_data_intervals / create_delta_data_intervals say.
        schedule=DeltaTriggerTimetable(interval),
        start_date=start,
        end_date=end,
        catchup=False,
        # Only what build_dags returns is registered (by the DAG file): never a half-built job.
        auto_register=False,
        # Runs of one job never overlap: they share its data, and the runtimes must be comparable.
        max_active_runs=1,
        tags=_tags(job, "draft"),
        default_args={"owner": _owner(job)},
        doc_md=_doc_md(job, "draft", jobs_folder, plan=plan, spec_text=spec_text),
    ) as dag:
        DraftRunOperator(
            task_id=DRAFT_TASK_ID,
            job=job,
            phase="draft",
            settings=settings,
            **_checked_pod_kwargs(pod_kwargs),
        )
    return dag


def build_promotion_dag(
    job: IngestionJob,
    plan: DraftPlan,
    jobs_folder: str | os.PathLike[str] | None = None,
    *,
    pod_kwargs: Mapping[str, Any] | None = None,
    spec_text: str | None = None,
) -> DAG:
    """``<job_id>__promotion``: wait for enough draft runs, then promote or reject, daily over the window.

    ``promote`` rewrites the job file in ``jobs_folder`` and deletes leftover draft pods through the
    same Kubernetes connection or kubeconfig as the draft runs (``pod_kwargs``).
    """
    from airflow.sdk import DAG, DeltaTriggerTimetable

    from airflow_sla_promotion.operators.promotion import PromotionOperator
    from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor

    start, end = draft_window(job, plan)
    # Daily from the plan's first evaluation date (a day into the window) until the window's end, so
    # the runs fall on the plan's evaluation dates and continue over an extension. (An EventsTimetable
    # of the dates would say the same but does not survive DAG serialization in Airflow 3.3.2.)
    first_evaluation = min(plan.evaluation_dates) if job.draft.started_at and plan.evaluation_dates else start
    with DAG(
        dag_id=promotion_dag_id(job.job_id),
        description=_description(job, "promotion decision over the draft runs"),
        schedule=DeltaTriggerTimetable(EVALUATION_INTERVAL),
        start_date=first_evaluation,
        end_date=end,
        catchup=False,
        auto_register=False,
        max_active_runs=1,
        tags=_tags(job, "promotion"),
        default_args={"owner": _owner(job)},
        doc_md=_doc_md(job, "promotion", jobs_folder, plan=plan, spec_text=spec_text),
    ) as dag:
        wait = DraftRunsSensor(task_id=SENSOR_TASK_ID, job=job, draft_dag_id=draft_dag_id(job.job_id))
        pods = _checked_pod_kwargs(pod_kwargs)
        cleanup: dict[str, Any] = {}
        if "kubernetes_conn_id" in pods:
            cleanup["kubernetes_conn_id"] = pods["kubernetes_conn_id"]
        if "config_file" in pods:
            cleanup["kube_config_file"] = pods["config_file"]
        promote = PromotionOperator(
            task_id=PROMOTE_TASK_ID,
            job=job,
            draft_dag_id=draft_dag_id(job.job_id),
            jobs_folder=None if jobs_folder is None else str(jobs_folder),
            **cleanup,
        )
        wait >> promote
    return dag


def build_production_dag(
    job: IngestionJob,
    jobs_folder: str | os.PathLike[str] | None = None,
    *,
    pod_kwargs: Mapping[str, Any] | None = None,
    settings: ProviderSettings | None = None,
    spec_text: str | None = None,
) -> DAG:
    """``<job_id>``: the promoted job on its production cron, namespace and (adjusted) resources."""
    from airflow.sdk import DAG, CronTriggerTimetable

    from airflow_sla_promotion.operators.draft_run import DraftRunOperator

    with DAG(
        dag_id=job.job_id,
        description=_description(job, f"production, {job.schedule_config.cron} in {job.namespace or '?'}"),
        schedule=CronTriggerTimetable(job.schedule_config.cron, timezone="UTC"),
        start_date=job.promoted_at or FALLBACK_START_DATE,
        catchup=False,
        auto_register=False,
        max_active_runs=1,
        # Promotion cannot unpause a DAG that does not exist yet: it is created running.
        is_paused_upon_creation=False,
        tags=_tags(job, "production"),
        default_args={"owner": _owner(job)},
        doc_md=_doc_md(job, "production", jobs_folder, spec_text=spec_text),
        deadline=runtime_deadline(job),
    ) as dag:
        DraftRunOperator(
            task_id=PRODUCTION_TASK_ID,
            job=job,
            phase="production",
            settings=settings,
            **_checked_pod_kwargs(pod_kwargs),
        )
    return dag


def runtime_deadline(job: IngestionJob) -> Any:
    """A Deadline Alert for the job's ``max_runtime`` SLA (minutes from the run being queued), or None."""
    max_runtime = job.sla_requirements.max_runtime
    if max_runtime is None:
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=max_runtime),
        callback=AsyncCallback(
            runtime_deadline_missed,
            kwargs={"job_id": job.job_id, "max_runtime_minutes": max_runtime},
        ),
        name=f"{job.job_id} max_runtime",
    )


async def runtime_deadline_missed(
    job_id: str, max_runtime_minutes: float, context: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Deadline callback (runs in the triggerer): a production run exceeded the job's ``max_runtime``."""
    dag_run = (context or {}).get("dag_run") or {}
    run_id = dag_run.get("run_id") if isinstance(dag_run, dict) else getattr(dag_run, "run_id", None)
    log.warning(
        "SLA max_runtime missed: job %s, run %s is still running after %s minutes",
        job_id,
        run_id,
        max_runtime_minutes,
    )
    return {
        "job_id": job_id,
        "run_id": run_id,
        "sla": "max_runtime",
        "max_runtime_minutes": max_runtime_minutes,
    }


def build_invalid_dag(path: Path, errors: list[JobFileError]) -> DAG:
    """``<stem>__invalid``: a paused, unscheduled DAG without tasks whose description says what is wrong."""
    from airflow.sdk import DAG

    first = errors[0]
    summary = f"{path.name}: {first.field}: {first.message}"
    if len(errors) > 1:
        summary += f" (and {len(errors) - 1} more)"
    lines = [
        f"# Invalid job file `{path.name}`",
        "",
        "This job file could not be loaded, so its draft, promotion or production DAGs are not built. "
        "Every other job file is unaffected. Fix the file (or run `sla-promotion validate` on it); the "
        "next parse replaces this placeholder.",
        "",
        "| file | field | problem |",
        "|---|---|---|",
        *(f"| `{error.path}` | `{error.field}` | {_md_cell(error.message)} |" for error in errors),
    ]
    return DAG(
        dag_id=invalid_dag_id(path),
        description=f"Invalid job file: {summary}"[:1000],
        schedule=None,
        start_date=FALLBACK_START_DATE,
        catchup=False,
        auto_register=False,
        is_paused_upon_creation=True,
        tags=[PROVIDER_TAG, "phase:invalid"],
        doc_md="\n".join(lines),
    )


# --- helpers ------------------------------------------------------------------------------------------


_RESERVED_POD_KWARGS = frozenset({"task_id", "job", "phase", "dag"})


def _checked_pod_kwargs(pod_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    reserved = _RESERVED_POD_KWARGS.intersection(pod_kwargs or {})
    if reserved:
        raise ValueError(f"pod_kwargs may not set {sorted(reserved)}: the factory sets them per job")
    return dict(pod_kwargs or {})


def _by_file(errors: Iterable[JobFileError]) -> dict[Path, list[JobFileError]]:
    grouped: dict[Path, list[JobFileError]] = {}
    for error in errors:
        grouped.setdefault(error.path, []).append(error)
    return grouped


def _owner(job: IngestionJob) -> str:
    return job.owner or job.tenant


def _tags(job: IngestionJob, phase: str) -> list[str]:
    return [PROVIDER_TAG, f"tenant:{job.tenant}", f"phase:{phase}"]


def _description(job: IngestionJob, what: str) -> str:
    return f"{job.job_name}: {what}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _last_decision(job: IngestionJob) -> str:
    if not job.promotion_history:
        return "none yet"
    entry = job.promotion_history[-1]
    text = f"`{entry.action}` by {entry.actor} at {entry.at.isoformat()}"
    if entry.from_status or entry.to_status:
        text += f" ({entry.from_status or '?'} -> {entry.to_status or '?'})"
    if entry.reason:
        text += f": {entry.reason}"
    return text


def _doc_md(
    job: IngestionJob,
    phase: str,
    jobs_folder: str | os.PathLike[str] | None,
    *,
    plan: DraftPlan | None = None,
    spec_text: str | None = None,
) -> str:
    """The job at a glance: what this DAG is for, its status and last decision, and the job file."""
    file_name = f"{job.job_id}{JOB_FILE_SUFFIX}"
    location = str(Path(jobs_folder) / file_name) if jobs_folder is not None else file_name
    purpose = {
        "draft": "Runs the job in the draft namespace on its test schedule; each run's record is the XCom "
        "`draft_execution` of task `draft_run`.",
        "promotion": "Waits until the draft runs give enough evidence (or the window closes), then "
        "promotes or rejects the job; the report is the XCom of task `promote`.",
        "production": "Runs the promoted job on its production schedule; each run's record is the XCom "
        "`production_execution` of task `run`.",
    }[phase]
    rows = [
        ("job", f"`{job.job_id}` ({job.job_name})"),
        ("tenant / owner", f"{job.tenant} / {_owner(job)}"),
        ("status", f"`{job.status}`"),
        ("production schedule", f"`{job.schedule_config.cron}`"),
        ("namespace", f"`{job.namespace or '-'}`"),
        ("last decision", _last_decision(job)),
        ("job file", f"`{location}`"),
    ]
    if plan is not None:
        start, end = draft_window(job, plan)
        window = (
            f"{start.isoformat()} .. {end.isoformat() if end else 'open'}"
            if job.draft.started_at
            else "no start written yet: every draft run counts"
        )
        rows += [
            ("test frequency", f"{plan.test_frequency} (`{plan.test_interval}`)"),
            ("test resources", ", ".join(f"{key} {value:g}" for key, value in plan.test_resources.items())),
            ("draft window", window),
        ]
    lines = [
        f"# {job.job_name}",
        "",
        job.description or "",
        "",
        purpose,
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {_md_cell(value)} |" for key, value in rows),
        "",
        "## Job specification",
        "",
        "```json",
        spec_text if spec_text is not None else _spec_text(job),
        "```",
    ]
    return "\n".join(lines)


def _spec_text(job: IngestionJob) -> str:
    """The job file's specification as shown in DAG docs (no history or feedback, env values masked)."""
    spec = job.model_dump(mode="json", exclude_none=True, exclude={"promotion_history", "promotion_feedback"})
    # Anyone who can see the DAG reads its docs: environment values stay in the job file.
    if spec.get("env"):
        spec["env"] = dict.fromkeys(spec["env"], "***")
    # JSON, not YAML: PyYAML's representer is pure Python even with libyaml's emitter, and was the
    # largest single cost of parsing many job files (BENCHMARKS.md, measure 1).
    return json.dumps(spec, indent=2)
