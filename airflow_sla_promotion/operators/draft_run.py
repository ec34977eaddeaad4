"""DraftRunOperator: runs an ingestion job through KubernetesPodOperator and records the run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from airflow_sla_promotion.config_store import resolve_job
from airflow_sla_promotion.policy.planning import calculate_test_resources
from airflow_sla_promotion.policy.quantities import kubernetes_resources
from airflow_sla_promotion.policy.scoring import PerformanceEvaluator, data_quality_score
from airflow_sla_promotion.spec import (
    AllocatedResources,
    DataQualityResults,
    DraftExecution,
    IngestionJob,
    QualityCheck,
    ResourceUsage,
)

if TYPE_CHECKING:
    import os

    from airflow.sdk import Context

    from airflow_sla_promotion.config import ProviderSettings
    from airflow_sla_promotion.spec import PerformanceEvaluation

Phase = Literal["draft", "production"]
#: XCom key of the run record, per phase.
XCOM_KEYS: dict[str, str] = {"draft": "draft_execution", "production": "production_execution"}
#: Default task id per phase (DAG ids and task ids are part of the public contract).
DEFAULT_TASK_IDS: dict[str, str] = {"draft": "draft_run", "production": "run"}
LABEL_JOB_ID = "sla-promotion/job-id"
LABEL_TENANT = "sla-promotion/tenant"
LABEL_PHASE = "sla-promotion/phase"
IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
CHECK_STATUSES = ("passed", "failed", "warning")
_GIB = 2**30


def parse_job_report(message: str | None) -> dict[str, Any] | None:
    """The job's report (``job_report`` format v1) from a termination message; None when there is none."""
    if not message:
        return None
    try:
        report = json.loads(message)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("v") != 1:
        return None
    return report


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _count(report: dict[str, Any] | None, key: str) -> int | None:
    value = report.get(key) if report else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _container_status(pod: k8s.V1Pod, name: str) -> k8s.V1ContainerStatus | None:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    return next((status for status in statuses if status.name == name), None)


def _failure_reason(pod: k8s.V1Pod, status: k8s.V1ContainerStatus | None, memory_limit: str | None) -> str:
    state = status.state if status else None
    terminated = state.terminated if state else None
    waiting = state.waiting if state else None
    if terminated is not None:
        if terminated.reason == "OOMKilled":
            limit = f" ({memory_limit})" if memory_limit else ""
            return f"OOMKilled: the container exceeded its memory limit{limit} (exit code {terminated.exit_code})"
        return f"exit code {terminated.exit_code} ({terminated.reason or 'Error'})"
    if waiting is not None and waiting.reason in IMAGE_ERRORS:
        return f"image pull error: {waiting.reason}" + (f": {waiting.message}" if waiting.message else "")
    phase = pod.status.phase if pod.status else None
    if phase in (None, "Pending", "Unknown"):
        detail = waiting.reason if waiting is not None and waiting.reason else "not scheduled or not started"
        return f"timeout: the pod never started (phase {phase or 'unknown'}, {detail})"
    return f"the pod ended in phase {phase} without a terminated base container"


def build_execution(
    *,
    job: IngestionJob,
    pod: k8s.V1Pod,
    allocated: AllocatedResources,
    execution_id: str,
    try_number: int | None,
    container_name: str = "base",
    fallback_start: datetime | None = None,
    memory_limit: str | None = None,
) -> DraftExecution:
    """The run record of a finished (or never started) pod and its termination message.

    Times: ``created_at`` is the container's start (``terminated.startedAt``), else the pod's creation,
    else ``fallback_start``. Runtime is the job's reported wall time, else the container's
    start-to-finish time, else 0 for a container that never ran. Usage is only what the job
    reported: ``resource_usage`` stays null when it reported nothing.
    """
    status = _container_status(pod, container_name)
    state = status.state if status else None
    terminated = state.terminated if state else None
    started = _utc(terminated.started_at if terminated else None) or _utc(
        state.running.started_at if state and state.running else None
    )
    finished = _utc(terminated.finished_at if terminated else None)
    created_at = (
        started
        or _utc(pod.metadata.creation_timestamp if pod.metadata else None)
        or fallback_start
        or datetime.now(UTC)
    )
    report = parse_job_report(terminated.message if terminated else None)

    wall = report.get("wall_seconds") if report else None
    if isinstance(wall, int | float) and wall >= 0:
        runtime_minutes = wall / 60
    elif started is not None and finished is not None:
        runtime_minutes = max((finished - started).total_seconds(), 0.0) / 60
    else:
        runtime_minutes = 0.0

    usage = None
    if report:
        cpu, peak = report.get("cpu_seconds"), report.get("peak_memory_bytes")
        if (
            isinstance(cpu, int | float)
            and isinstance(peak, int)
            and isinstance(wall, int | float)
            and wall > 0
        ):
            usage = ResourceUsage(avg_cpu_utilization=cpu / wall, peak_memory_usage_gb=peak / _GIB)

    quality = None
    checks = report.get("checks") if report else None
    if checks:
        # A report written by hand in another language may carry odd entries: keep the valid ones.
        valid = [
            QualityCheck(name=c["name"], status=c["status"], details=_text(c.get("details")))
            for c in checks
            if isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("status") in CHECK_STATUSES
        ]
        quality = DataQualityResults(checks=valid) if valid else None

    freshness = None
    watermark = report.get("data_watermark") if report else None
    if isinstance(watermark, str):
        try:
            moment = _utc(datetime.fromisoformat(watermark.replace("Z", "+00:00")))
        except ValueError:
            moment = None
        if moment is not None:
            # Data newer than the run's start is as fresh as it gets: lag 0.
            freshness = max((created_at - moment).total_seconds() / 60, 0.0)

    succeeded = (pod.status.phase if pod.status else None) == "Succeeded" or (
        terminated is not None and terminated.exit_code == 0
    )
    return DraftExecution(
        execution_id=execution_id,
        job_id=job.job_id,
        status="completed" if succeeded else "failed",
        created_at=created_at,
        actual_runtime_minutes=runtime_minutes,
        allocated_resources=allocated,
        resource_usage=usage,
        data_quality_results=quality,
        data_quality_score=data_quality_score(quality),
        data_freshness_minutes=freshness,
        records_processed=_count(report, "records_processed"),
        records_failed=_count(report, "records_failed"),
        try_number=try_number,
        failure_reason=None if succeeded else _failure_reason(pod, status, memory_limit),
        pod_name=pod.metadata.name if pod.metadata else None,
        pod_namespace=pod.metadata.namespace if pod.metadata else None,
    )


def summary(
    execution: DraftExecution, evaluation: PerformanceEvaluation, job: IngestionJob, phase: Phase = "draft"
) -> str:
    """A one-screen, human-readable account of one run and its scores."""
    results = evaluation.evaluation_results
    runtime = results["runtime_performance"]
    lines = [
        f"{phase.capitalize()} run of {job.job_id} ({execution.execution_id}, try {execution.try_number}): "
        f"{execution.status}" + (f" - {execution.failure_reason}" if execution.failure_reason else ""),
        f"  runtime      {execution.actual_runtime_minutes:.2f} min ({execution.actual_runtime_minutes * 60:.1f} s)"
        f" vs estimate "
        f"{job.resource_requirements.estimated_runtime_minutes:g} min "
        f"(ratio {runtime.get('performance_ratio', 0):.2f}, {runtime.get('status')})",
    ]
    allocated = execution.allocated_resources
    usage = execution.resource_usage
    if usage is None:
        lines.append(
            f"  resources    no usage reported (allocated {allocated.cpu_cores:g} cores, {allocated.memory_gb:g} GiB)"
        )
    else:
        lines.append(
            f"  cpu          {usage.avg_cpu_utilization:.2f} of {allocated.cpu_cores:g} cores "
            f"({usage.avg_cpu_utilization / allocated.cpu_cores:.0%})"
        )
        lines.append(
            f"  memory       {usage.peak_memory_usage_gb:.2f} of {allocated.memory_gb:g} GiB peak "
            f"({usage.peak_memory_usage_gb / allocated.memory_gb:.0%})"
        )
    if execution.data_quality_results is None:
        lines.append("  checks       none reported")
    else:
        counts = {s: 0 for s in ("passed", "warning", "failed")}
        for check in execution.data_quality_results.checks:
            counts[check.status] += 1
        lines.append(
            f"  checks       {counts['passed']} passed, {counts['warning']} warning, {counts['failed']} failed "
            f"(quality score {execution.data_quality_score})"
        )
    if execution.records_processed is not None or execution.data_freshness_minutes is not None:
        lines.append(
            f"  records      {execution.records_processed} processed, {execution.records_failed} failed; "
            + (
                "no data watermark"
                if execution.data_freshness_minutes is None
                else f"data lag {execution.data_freshness_minutes:.1f} min behind the run's start"
            )
        )
    scores = ", ".join(f"{metric} {values['score']:.2f}" for metric, values in results.items())
    lines.append(
        f"  score        {evaluation.overall_score:.2f} overall "
        f"({'eligible' if evaluation.promotion_eligible else 'not eligible'} for promotion): {scores}"
    )
    if evaluation.recommendations:
        lines.append("  recommendations:")
        lines.extend(f"    - {advice}" for advice in evaluation.recommendations)
    return "\n".join(lines)


class DraftRunOperator(KubernetesPodOperator):
    """Run an ingestion job's container through KubernetesPodOperator and record the run.

    In the ``draft`` phase the pod runs in ``[sla_promotion] draft_namespace`` with the job's test
    resources (its estimate plus headroom); in the ``production`` phase in the job's own namespace with
    its own (possibly adjusted) resources. After the pod ends - success or failure, sync or deferrable -
    the final pod and the job's termination message (``job_report``) become a ``DraftExecution``,
    pushed to XCom ``draft_execution`` (production: ``production_execution``) before the task fails on a
    failed pod, scored with ``PerformanceEvaluator`` and summarised in the task log.

    :param job: the ``IngestionJob`` or the path of its YAML file.
    :param phase: ``draft`` (default) or ``production``.
    :param run_as_non_root: also set ``runAsNonRoot: true`` on the container (the image must then
        declare a non-root user).
    :param settings: the ``[sla_promotion]`` options; default: read from Airflow's configuration (a DAG
        factory building many tasks passes the ones it has already read).
    :param kpo_kwargs: any KubernetesPodOperator argument (``config_file``, ``kubernetes_conn_id``,
        ``deferrable``, ``poll_interval``, ...). ``namespace``, ``image``, ``cmds``, ``arguments``,
        ``env_vars``, ``container_resources`` and ``name`` default to the job's; labels are merged.
        ``do_xcom_push`` is always off: it would add a sidecar; the record has its own XCom key.
    """

    template_fields = KubernetesPodOperator.template_fields

    def __init__(
        self,
        *,
        job: IngestionJob | str | os.PathLike[str],
        phase: Phase = "draft",
        run_as_non_root: bool = False,
        settings: ProviderSettings | None = None,
        **kpo_kwargs: Any,
    ) -> None:
        from airflow_sla_promotion.config import load_settings

        if phase not in XCOM_KEYS:
            raise ValueError(f"phase must be 'draft' or 'production', not {phase!r}")
        if kpo_kwargs.pop("do_xcom_push", False):
            raise ValueError(
                "DraftRunOperator pushes its own XCom keys; do_xcom_push (a sidecar) is not supported"
            )
        settings = settings or load_settings()
        resolved = resolve_job(job, context=settings.validation_context)
        if phase == "draft":
            test = calculate_test_resources(resolved.resource_requirements)
            cpu, memory = test.cpu_cores, test.memory_gb
            namespace = settings.draft_namespace
        else:
            if not resolved.namespace:
                raise ValueError(f"job {resolved.job_id} has no namespace: it cannot run in production")
            requirements = resolved.resource_requirements
            cpu, memory = requirements.cpu_cores, requirements.memory_gb
            namespace = resolved.namespace
        quantities = kubernetes_resources(cpu, memory)
        security: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        if run_as_non_root:
            security["runAsNonRoot"] = True
        labels = {
            **(kpo_kwargs.pop("labels", None) or {}),
            LABEL_JOB_ID: resolved.job_id,
            LABEL_TENANT: resolved.tenant,
            LABEL_PHASE: phase,
        }
        kpo_kwargs.setdefault("task_id", DEFAULT_TASK_IDS[phase])
        kpo_kwargs.setdefault("namespace", namespace)
        kpo_kwargs.setdefault("name", f"{resolved.job_id}-{phase}".replace("_", "-"))
        kpo_kwargs.setdefault("image", resolved.image)
        kpo_kwargs.setdefault("cmds", list(resolved.cmds))
        kpo_kwargs.setdefault("arguments", list(resolved.arguments))
        kpo_kwargs.setdefault("env_vars", dict(resolved.env))
        kpo_kwargs.setdefault("container_resources", k8s.V1ResourceRequirements(**quantities))
        kpo_kwargs.setdefault("container_security_context", security)
        super().__init__(labels=labels, do_xcom_push=False, **kpo_kwargs)
        self.job = resolved
        self.phase: Phase = phase
        self.run_as_non_root = run_as_non_root
        self.allocated = AllocatedResources(cpu_cores=cpu, memory_gb=memory)
        self.xcom_key = XCOM_KEYS[phase]
        self.memory_limit = quantities["limits"]["memory"]
        self.execution_record: dict[str, Any] | None = None

    def execute(self, context: Context) -> dict[str, Any] | None:
        """Launch the pod; return the run record (sync, or deferrable when the pod had already ended)."""
        self.execution_record = None
        super().execute(context)
        return self.execution_record

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> dict[str, Any] | None:
        """Back from the trigger: read logs, record the run, clean up (raising on a failed pod)."""
        super().trigger_reentry(context, event)
        return self.execution_record

    def cleanup(
        self,
        pod: k8s.V1Pod,
        remote_pod: k8s.V1Pod,
        xcom_result: dict[Any, Any] | None = None,
        context: Context | None = None,
    ) -> None:
        # KPO's cleanup raises for a failed pod, so the record is built and pushed first. The same
        # method runs at the end of sync execution and of trigger re-entry.
        if (
            remote_pod is not None
            and context is not None
            and not self._killed
            and self.execution_record is None
        ):
            try:
                self.record_run(self._final_pod(remote_pod), context)
            except Exception:
                self.log.exception("Could not record the run of pod %s", remote_pod.metadata.name)
        super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)

    def _final_pod(self, remote_pod: k8s.V1Pod) -> k8s.V1Pod:
        """The pod as it is now when the copy at hand may be stale (it ended before the container ran)."""
        status = _container_status(remote_pod, self.base_container_name)
        if status is not None and status.state is not None and status.state.terminated is not None:
            return remote_pod
        try:
            return self.pod_manager.read_pod(remote_pod)
        except ApiException as error:
            self.log.warning("Could not re-read pod %s: %s", remote_pod.metadata.name, error.reason)
            return remote_pod

    def record_run(self, pod: k8s.V1Pod, context: Context) -> dict[str, Any]:
        """Build, score, log and push the run record of ``pod``; return it as JSON-safe data."""
        ti = context["ti"]
        execution = build_execution(
            job=self.job,
            pod=pod,
            allocated=self.allocated,
            # One record per DAG run: a retry replaces the previous try's XCom, and try_number says which.
            execution_id=str(context["run_id"]),
            try_number=getattr(ti, "try_number", None),
            container_name=self.base_container_name,
            fallback_start=_utc(getattr(ti, "start_date", None)),
            memory_limit=self.memory_limit,
        )
        record = execution.model_dump(mode="json")
        ti.xcom_push(key=self.xcom_key, value=record)
        self.execution_record = record
        try:
            evaluation = PerformanceEvaluator().evaluate_draft_execution(execution, self.job)
        except Exception:
            # The record is already pushed; a scoring problem must not change the task's outcome.
            self.log.exception("Could not score the run")
        else:
            self.log.info("%s", summary(execution, evaluation, self.job, self.phase))
        return record
