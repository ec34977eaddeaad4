"""PromotionOperator: reads a job's draft runs, decides promote/reject/extend and applies the decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseNotifier, BaseOperator
from airflow.sdk.exceptions import AirflowException
from pydantic import ValidationError

from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook
from airflow_sla_promotion.spec import AllocatedResources, DraftExecution, IngestionJob, PromotionEvaluation
from airflow_sla_promotion.triggers.draft_runs import FINISHED_RUN_STATES, FINISHED_TI_STATES

if TYPE_CHECKING:
    import os

    from airflow.sdk import Context

    from airflow_sla_promotion.config import ProviderSettings
    from airflow_sla_promotion.config_store import JobConfigStore
    from airflow_sla_promotion.hooks.airflow_api import ApiDagRun, ApiTaskInstance
    from airflow_sla_promotion.workflow import Notifier

#: XCom key of a draft run's record (pushed by DraftRunOperator).
DRAFT_EXECUTION_KEY = "draft_execution"
#: Draft pods carry this label (DraftRunOperator); cleanup after a promotion deletes by it.
JOB_ID_LABEL = "sla-promotion/job-id"
#: Choices offered to the approver when ``require_approval=True``.
APPROVE = "Apply decision"
DECLINE = "Do not apply"
DEFAULT_MAX_RUNS = 1000


class DraftEvidenceError(AirflowException):
    """The draft runs could not be read completely; no decision is taken on partial evidence."""


def promoted_job_asset(job_id: str) -> Asset:
    """The asset that gets an event when ``job_id`` is promoted (schedule production consumers on it)."""
    return Asset(name=f"sla_promotion/{job_id}/promoted", uri=f"sla-promotion://jobs/{job_id}/promoted")


def promotion_alias(job_id: str) -> AssetAlias:
    """The promote task's outlet: it resolves to :func:`promoted_job_asset` only when a promotion happened."""
    return AssetAlias(name=f"sla_promotion/{job_id}/promotion")


# --- joining REST metadata and run records -------------------------------------------------------------


def join_draft_runs(
    job: IngestionJob,
    runs: Sequence[ApiDagRun],
    task_instances: Sequence[ApiTaskInstance],
    records: Mapping[str, Any],
    *,
    draft_task_id: str,
    allocated: AllocatedResources,
) -> tuple[list[DraftExecution], list[str]]:
    """One ``DraftExecution`` per finished draft run; runs still in flight are left out (named in the 2nd list).

    The task instance's state is the truth for the outcome: a run whose task failed is ``failed`` even if
    its record says otherwise. The record (``records[run_id]``, the run's ``draft_execution`` XCom) adds
    usage, quality and the job's own runtime. A run without a record gets its start and runtime from the
    task instance; when it failed, the task state is its ``failure_reason``.

    :raises DraftEvidenceError: a record is not a valid ``DraftExecution`` of this job.
    """
    by_run: dict[str, ApiTaskInstance] = {}
    for candidate in task_instances:
        if candidate.task_id == draft_task_id and candidate.map_index in (-1, 0):
            by_run.setdefault(candidate.run_id, candidate)
    executions: list[DraftExecution] = []
    in_flight: list[str] = []
    for run in runs:
        ti = by_run.get(run.run_id)
        if ti is not None and ti.state in FINISHED_TI_STATES:
            succeeded, state = ti.state == "success", f"draft task {ti.state}"
        elif run.state in FINISHED_RUN_STATES:
            # The run ended but its draft task did not run to an end: never a success.
            succeeded = False
            state = f"draft task {ti.state or 'never started'}" if ti else "no draft task instance"
        else:
            in_flight.append(run.run_id)
            continue
        record = records.get(run.run_id)
        if record is not None:
            execution = _validated_record(job, run.run_id, record)
            if not succeeded:
                execution = execution.model_copy(
                    update={
                        "status": "failed",
                        "failure_reason": execution.failure_reason or state,
                    }
                )
            elif execution.status != "completed":
                execution = execution.model_copy(update={"status": "completed", "failure_reason": None})
            if execution.try_number is None and ti is not None and ti.try_number:
                execution = execution.model_copy(update={"try_number": ti.try_number})
            executions.append(execution)
            continue
        start = (ti.start_date if ti is not None else None) or run.start_date or run.run_after
        if start is None:
            raise DraftEvidenceError(f"draft run {run.run_id} has no start time in the API's answer")
        end = (ti.end_date if ti is not None else None) or run.end_date or start
        minutes = (ti.duration / 60 if ti is not None and ti.duration is not None else None) or max(
            0.0, (end - start).total_seconds() / 60
        )
        executions.append(
            DraftExecution(
                execution_id=run.run_id,
                job_id=job.job_id,
                status="completed" if succeeded else "failed",
                created_at=start,
                actual_runtime_minutes=round(minutes, 4),
                allocated_resources=allocated,
                try_number=(ti.try_number or None) if ti is not None else None,
                failure_reason=None if succeeded else f"{state}; the run left no record",
            )
        )
    return executions, in_flight


def _validated_record(job: IngestionJob, run_id: str, record: Any) -> DraftExecution:
    try:
        execution = DraftExecution.model_validate(record)
    except ValidationError as error:
        raise DraftEvidenceError(
            f"the draft_execution record of run {run_id} is not a valid DraftExecution: "
            f"{error.error_count()} error(s), first: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}"
        ) from None
    if execution.job_id != job.job_id:
        raise DraftEvidenceError(
            f"the draft_execution record of run {run_id} belongs to job {execution.job_id!r}, not {job.job_id!r}"
        )
    return execution


# --- readable summary ----------------------------------------------------------------------------------

_CRITERION_FIELDS = {
    # criterion: (measured key, threshold key, comparison shown)
    "min_successful_runs": ("actual", "required", ">="),
    "min_evaluation_period": ("actual_days", "required_days", ">="),
    "performance_variance": ("actual", "max_allowed", "<="),
    "sla_compliance": ("actual", "min_required", ">="),
    "overall_score": ("actual", "min_required", ">="),
    "target_namespace": ("requested", "allowed", "in"),
}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


def criteria_rows(criteria_results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(criterion, measured value, threshold, PASS|FAIL)`` for every criterion, in the report's order."""
    rows = []
    for name, result in criteria_results.items():
        if not isinstance(result, Mapping) or "passed" not in result:
            continue
        measured_key, threshold_key, op = _CRITERION_FIELDS.get(name, ("actual", "required", ""))
        threshold = f"{op} {_cell(result.get(threshold_key))}".strip()
        rows.append(
            (name, _cell(result.get(measured_key)), threshold, "PASS" if result["passed"] else "FAIL")
        )
    return rows


def criteria_table(criteria_results: Mapping[str, Any]) -> str:
    """The criteria as an aligned plain-text table (also valid Markdown)."""
    header = ("criterion", "measured", "threshold", "result")
    rows = [header, *criteria_rows(criteria_results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows[1:])])


# --- the real ports of the workflow -------------------------------------------------------------------


class RestAirflowActions:
    """``workflow.AirflowActions`` over the REST API: pausing the draft and promotion DAGs."""

    def __init__(self, hook: AirflowApiHook) -> None:
        self.hook = hook

    def pause_dag(self, dag_id: str) -> None:
        self.hook.pause_dag(dag_id, paused=True)


class KubernetesPodCleanup:
    """``workflow.DraftCleanup`` with the cncf.kubernetes provider's ``KubernetesHook``."""

    def __init__(self, kubernetes_conn_id: str | None, config_file: str | None = None) -> None:
        self.kubernetes_conn_id = kubernetes_conn_id
        self.config_file = config_file

    def delete_pods(self, namespace: str, label_selector: str) -> int:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.client.exceptions import ApiException

        client = KubernetesHook(conn_id=self.kubernetes_conn_id, config_file=self.config_file).core_v1_client
        pods = client.list_namespaced_pod(namespace, label_selector=label_selector).items
        deleted = 0
        for pod in pods:
            try:
                client.delete_namespaced_pod(pod.metadata.name, namespace)
            except ApiException as error:
                if error.status != 404:  # already gone is what we want
                    raise
            deleted += 1
        return deleted


class AirflowNotifierPort:
    """``workflow.Notifier`` around an Airflow notifier (``BaseNotifier``: Slack, SMTP, ...).

    The notifier gets the task's context plus ``promotion_event`` (``promoted``, ``rejected`` or
    ``extended``) and ``promotion`` (the outcome, with job id, name, tenant and owner) for its templates.
    """

    def __init__(self, notifier: BaseNotifier, context: Mapping[str, Any]) -> None:
        self.notifier = notifier
        self.context = context

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        self.notifier({**self.context, "promotion_event": event, "promotion": payload})


# --- the operator --------------------------------------------------------------------------------------


class PromotionOperator(BaseOperator):
    """
    Decides whether a draft job is promoted, and applies the decision.

    Reads the draft DAG's runs and their ``draft_task_id`` task instances from the Airflow REST API v2,
    and each run's ``draft_execution`` record through the Task SDK (``xcom_pull``; the REST API when that
    fails); joins them (task-instance state is the truth for the outcome; a run that died without a record
    counts as failed, its task state as the reason); runs ``PromotionDecisionEngine`` with the job's
    criteria and the provider's namespaces; then ``PromotionWorkflowManager``: promote (rewrite the job
    file, pause the draft and promotion DAGs, delete leftover draft pods, emit the asset event of
    :func:`promoted_job_asset` through this task's ``AssetAlias`` outlet, notify), reject (feedback in the
    job file, notify) or extend the draft window when only evidence was short.

    Returns (XCom) ``{job_id, evaluation_data, criteria_results, promotion_decision, outcome: {status:
    promoted|rejected|extended, ...}, feedback_report, evaluated_at}`` and logs a table of every criterion:
    measured value, threshold, pass/fail. Metadata that cannot be read completely fails the task with a
    clear error (:class:`DraftEvidenceError`); no decision is taken on partial evidence.

    :param job: the job (``IngestionJob``) or the path of its YAML file. The job file is re-read from the
        jobs folder when the task runs.
    :param draft_dag_id: the draft DAG; default ``<job_id>__draft``. (templated)
    :param draft_task_id: the draft DAG's task that runs the job. (templated)
    :param airflow_conn_id: connection of type ``airflow_api``. (templated)
    :param notifiers: Airflow notifiers (``BaseNotifier``) told about every outcome; objects with
        ``notify(event, payload)`` are used as they are.
    :param require_approval: wait for a person (Airflow's Human-in-the-loop: the task waits in
        ``awaiting_input`` and shows the decision in "Required actions") before a promotion, or a reject
        that is final, is applied. Declined: nothing is rewritten and the outcome's status is
        ``not_approved``. Extensions of the draft window need no approval.
    :param approval_timeout: how long to wait for the approver; then nothing is applied.
    :param jobs_folder: folder of the job files; default the folder of ``job`` when it is a path, else
        ``[sla_promotion] jobs_folder``, else ``jobs`` beside the DAG file.
    :param kubernetes_conn_id: Kubernetes connection for deleting leftover draft pods; None: no cleanup.
    :param kube_config_file: kubeconfig for that cleanup, instead of the connection's.
    :param max_runs: newest draft runs read at most; more runs in the window than this is an error.
    """

    template_fields: Sequence[str] = ("draft_dag_id", "draft_task_id", "airflow_conn_id")
    ui_color = "#d4edda"

    def __init__(
        self,
        *,
        job: IngestionJob | str | os.PathLike[str],
        draft_dag_id: str | None = None,
        draft_task_id: str = "draft_run",
        airflow_conn_id: str = AirflowApiHook.default_conn_name,
        notifiers: Sequence[BaseNotifier | Notifier] = (),
        require_approval: bool = False,
        approval_timeout: timedelta | None = None,
        jobs_folder: str | os.PathLike[str] | None = None,
        kubernetes_conn_id: str | None = "kubernetes_default",
        kube_config_file: str | None = None,
        max_runs: int = DEFAULT_MAX_RUNS,
        **kwargs: Any,
    ) -> None:
        job_id = job.job_id if isinstance(job, IngestionJob) else _job_id_of(job)
        self.alias = promotion_alias(job_id)
        outlets = kwargs.pop("outlets", None) or []
        outlets = list(outlets) if isinstance(outlets, list | tuple) else [outlets]
        super().__init__(outlets=[*outlets, self.alias], **kwargs)
        self.job = job
        self.job_id = job_id
        self.draft_dag_id = draft_dag_id or f"{job_id}__draft"
        self.draft_task_id = draft_task_id
        self.airflow_conn_id = airflow_conn_id
        self.notifiers = tuple(notifiers)
        self.require_approval = require_approval
        self.approval_timeout = approval_timeout
        self.jobs_folder = jobs_folder
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kube_config_file = kube_config_file
        self.max_runs = max_runs

    @cached_property
    def hook(self) -> AirflowApiHook:
        return AirflowApiHook(self.airflow_conn_id)

    @cached_property
    def settings(self) -> ProviderSettings:
        from airflow_sla_promotion.config import load_settings

        return load_settings()

    @cached_property
    def store(self) -> JobConfigStore:
        from airflow_sla_promotion.config_store import JobConfigStore

        return JobConfigStore(self._jobs_folder(), context=self.settings.validation_context)

    # -- execute

    def execute(self, context: Context) -> dict[str, Any]:
        job = self.store.load(self.job_id)
        executions = self.read_draft_executions(job, context)
        evaluation = self.evaluate(job, executions)
        self.log.info(
            "Promotion evaluation of %s over %d draft run(s) of %s:\n%s\nDecision: %s. %s",
            self.job_id,
            len(executions),
            self.draft_dag_id,
            criteria_table(evaluation.criteria_results),
            evaluation.promotion_decision.decision,
            evaluation.promotion_decision.message,
        )
        if self.require_approval and self._needs_approval(job, evaluation):
            self._ask_for_approval(context, evaluation)
        return self.apply(context, evaluation)

    def execute_approved(
        self, context: Context, evaluation: dict[str, Any], event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the approver answered: apply the decision they saw, or nothing."""
        decided = PromotionEvaluation.model_validate(evaluation)
        event = event or {}
        chosen = list(event.get("chosen_options") or [])
        who = (event.get("responded_by_user") or {}).get("name") if event.get("responded_by_user") else None
        if chosen == [APPROVE] and not event.get("timedout"):
            self.log.info("Decision approved by %s; applying it.", who or "an approver")
            return self.apply(context, decided, reason=f"approved by {who}" if who else None)
        why = (
            "no answer in time"
            if event.get("timedout") or not chosen
            else f"declined by {who or 'the approver'}"
        )
        self.log.info("Decision not applied: %s. Nothing was rewritten.", why)
        outcome = {
            "status": "not_approved",
            "job_id": self.job_id,
            "changed": False,
            "decision": decided.promotion_decision.decision,
            "message": f"{decided.promotion_decision.decision} of job {self.job_id} not applied: {why}",
        }
        return self.report(decided, outcome)

    # -- steps

    def read_draft_executions(self, job: IngestionJob, context: Context) -> list[DraftExecution]:
        """The draft runs as records, joined from the REST API and the runs' XComs."""
        from airflow_sla_promotion.policy.planning import calculate_test_resources

        runs = self.hook.list_dag_runs(self.draft_dag_id, limit=self.max_runs)
        started_at = job.draft.started_at
        if len(runs) >= self.max_runs:
            oldest = runs[-1].run_after or runs[-1].start_date
            if started_at is None or (oldest is not None and oldest >= started_at):
                raise DraftEvidenceError(
                    f"{self.draft_dag_id} has more than max_runs={self.max_runs} draft runs in the window; "
                    "raise max_runs so that no run is left out of the decision"
                )
        tis = self.hook.list_task_instances(
            self.draft_dag_id, [run.run_id for run in runs], task_ids=[self.draft_task_id]
        )
        finished = {ti.run_id for ti in tis if ti.state in FINISHED_TI_STATES}
        records = {
            run.run_id: self._record(context, run.run_id)
            for run in runs
            if run.state in FINISHED_RUN_STATES or run.run_id in finished
        }
        test = calculate_test_resources(job.resource_requirements)
        executions, in_flight = join_draft_runs(
            job,
            runs,
            tis,
            {run_id: record for run_id, record in records.items() if record is not None},
            draft_task_id=self.draft_task_id,
            allocated=AllocatedResources(cpu_cores=test.cpu_cores, memory_gb=test.memory_gb),
        )
        if in_flight:
            self.log.info(
                "Left out %d draft run(s) still in flight: %s", len(in_flight), ", ".join(in_flight)
            )
        return executions

    def _record(self, context: Context, run_id: str) -> Any:
        """A run's ``draft_execution`` XCom: Task SDK first (honours custom XCom backends), REST second."""
        ti = context.get("ti")
        if ti is not None:
            try:
                return ti.xcom_pull(
                    dag_id=self.draft_dag_id,
                    task_ids=self.draft_task_id,
                    key=DRAFT_EXECUTION_KEY,
                    run_id=run_id,
                )
            except Exception as error:
                self.log.warning(
                    "Task SDK XCom read of run %s failed (%s); reading it through the REST API",
                    run_id,
                    type(error).__name__,
                )
        try:
            return self.hook.get_xcom_value(
                self.draft_dag_id, run_id, self.draft_task_id, DRAFT_EXECUTION_KEY
            )
        except AirflowException as error:
            raise DraftEvidenceError(
                f"cannot read the draft_execution record of run {run_id}: {error}"
            ) from None

    def evaluate(self, job: IngestionJob, executions: Sequence[DraftExecution]) -> PromotionEvaluation:
        from airflow_sla_promotion.policy.decision import PromotionDecisionEngine

        engine = PromotionDecisionEngine(
            criteria=job.criteria(),
            allowed_target_namespaces=self.settings.allowed_target_namespaces,
            draft_namespace=self.settings.draft_namespace,
        )
        return engine.evaluate_promotion_eligibility(job, executions, now=datetime.now(UTC))

    def apply(
        self, context: Context, evaluation: PromotionEvaluation, reason: str | None = None
    ) -> dict[str, Any]:
        """Run the workflow with the real ports; return the report."""
        from airflow_sla_promotion.workflow import PromotionException, PromotionWorkflowManager

        outlet_events = context.get("outlet_events")

        def emit_asset(job_id: str, extra: dict[str, Any]) -> None:
            if outlet_events is None:
                raise RuntimeError("no outlet_events in the task context")
            outlet_events[self.alias].add(promoted_job_asset(job_id), extra=extra)

        manager = PromotionWorkflowManager(
            self.store,
            settings=self.settings,
            airflow=RestAirflowActions(self.hook),
            cleanup=(
                KubernetesPodCleanup(self.kubernetes_conn_id, self.kube_config_file)
                if self.kubernetes_conn_id or self.kube_config_file
                else None
            ),
            notifiers=[self._notifier_port(notifier, context) for notifier in self.notifiers],
            emit_asset=emit_asset,
        )
        try:
            outcome = manager.execute_promotion_workflow(
                evaluation, now=datetime.now(UTC), actor=f"airflow:{self._task_ref(context)}", reason=reason
            )
        except PromotionException as error:
            raise AirflowException(f"The decision for job {self.job_id} was not applied: {error}") from error
        self.log.info("Outcome: %s. %s", outcome["status"], outcome.get("message", ""))
        if outcome.get("pending_steps"):
            self.log.warning("Steps pending after %s: %s", outcome["status"], outcome.get("errors"))
        return self.report(evaluation, outcome)

    @staticmethod
    def report(evaluation: PromotionEvaluation, outcome: dict[str, Any]) -> dict[str, Any]:
        """The JSON-safe report (the task's XCom)."""
        data = evaluation.model_dump(mode="json")
        return {
            "job_id": data["job_id"],
            "evaluation_data": data["evaluation_data"],
            "criteria_results": data["criteria_results"],
            "promotion_decision": data["promotion_decision"],
            "outcome": outcome,
            "feedback_report": data["feedback_report"],
            "evaluated_at": data["evaluated_at"],
        }

    # -- approval

    def _needs_approval(self, job: IngestionJob, evaluation: PromotionEvaluation) -> bool:
        """Promotions, and rejects that are final; an extension of the draft window is applied directly."""
        from airflow_sla_promotion.policy.decision import evidence_short

        decision = evaluation.promotion_decision
        if decision.decision == "promote":
            return True
        if not evidence_short(decision.failed_criteria):
            return True
        return len(job.draft.extensions) >= self.settings.max_draft_extensions

    def _ask_for_approval(self, context: Context, evaluation: PromotionEvaluation) -> None:
        from airflow.sdk.exceptions import TaskAwaitingInput
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        decision = evaluation.promotion_decision
        body = "\n\n".join(
            [
                f"**Decision: {decision.decision}** ({decision.message})",
                criteria_table(evaluation.criteria_results),
                f"Choose *{APPROVE}* to rewrite `{self.job_id}.yaml` accordingly, or *{DECLINE}* to leave "
                "it unchanged.",
            ]
        )
        upsert_hitl_detail(
            ti_id=context["ti"].id,
            options=[APPROVE, DECLINE],
            subject=f"{decision.decision.capitalize()} ingestion job {self.job_id}?",
            body=body,
            defaults=None,
            multiple=False,
            params={},
        )
        self.log.info("Waiting for approval of the %s decision", decision.decision)
        raise TaskAwaitingInput(
            method_name="execute_approved",
            kwargs={"evaluation": evaluation.model_dump(mode="json")},
            timeout=self.approval_timeout,
        )

    # -- helpers

    def _jobs_folder(self) -> Path:
        if self.jobs_folder:
            return Path(self.jobs_folder)
        if not isinstance(self.job, IngestionJob):
            return Path(self.job).parent
        if self.settings.jobs_folder:
            return Path(self.settings.jobs_folder)
        fileloc = getattr(self.dag, "fileloc", None) if self.has_dag() else None
        if not fileloc:
            raise AirflowException(
                "cannot tell where the job files are: pass jobs_folder= or set [sla_promotion] jobs_folder"
            )
        return Path(fileloc).parent / "jobs"

    @staticmethod
    def _notifier_port(notifier: Any, context: Context) -> Notifier:
        if isinstance(notifier, BaseNotifier):
            return AirflowNotifierPort(notifier, context)
        return notifier  # type: ignore[no-any-return]

    @staticmethod
    def _task_ref(context: Context) -> str:
        ti = context.get("ti")
        if ti is None:
            return "promote"
        return f"{ti.dag_id}/{ti.run_id}"


def _job_id_of(path: str | os.PathLike[str]) -> str:
    """A job file's id is its stem (config_store enforces it), so the DAG can be built without reading it."""
    return Path(path).stem
