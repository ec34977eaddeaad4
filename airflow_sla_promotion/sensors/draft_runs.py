"""DraftRunsSensor: waits until a draft DAG has enough runs to decide on promotion, or its window closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException

from airflow_sla_promotion.config_store import resolve_job
from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook
from airflow_sla_promotion.triggers.draft_runs import (
    DEFAULT_MAX_RUNS,
    DraftRunsProgress,
    DraftRunsTrigger,
    assess_draft_runs,
    draft_run_evidence,
)

if TYPE_CHECKING:
    import os

    from airflow.sdk import Context

    from airflow_sla_promotion.spec import IngestionJob

#: Extra time the deferred sensor may wait past the end of the draft window before it times out.
WINDOW_GRACE = timedelta(hours=1)


class DraftRunsSensor(BaseSensorOperator):
    """
    Waits until the draft DAG of a job has enough evidence for a promotion decision.

    Done when the draft DAG has ``min_successful_runs`` successful runs whose evaluation period reaches
    ``min_evaluation_period_days`` (the rule the decision engine applies, ``policy.evidence``), or when
    the draft window closes (``draft.window_ends_at``, else ``draft.started_at`` plus
    ``test_execution_days``). It does not fail when the window closes: its XCom says which of the two
    happened, ``{"status": "criteria_met" | "window_closed", "message", "successful_runs", "total_runs",
    "evaluation_period_days", ...}``, and the promotion step decides (and reports) either way.

    The draft runs are read through the Airflow REST API v2 (never the metadata DB). Deferrable by
    default: it waits in the triggerer (:class:`~airflow_sla_promotion.triggers.draft_runs.DraftRunsTrigger`)
    unless ``deferrable=False`` or ``[operators] default_deferrable = False``; then it pokes.

    :param job: the job (:class:`~airflow_sla_promotion.spec.IngestionJob`) or the path of its YAML file,
        read when the sensor runs so that an extended window is seen.
    :param draft_dag_id: the draft DAG; default ``<job_id>__draft``. (templated)
    :param draft_task_id: the draft DAG's task that runs the job. (templated)
    :param airflow_conn_id: connection of type ``airflow_api``. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param max_runs: newest draft runs read at most.
    :param timeout: seconds before the sensor fails; default the end of the draft window plus an hour
        (or ``[sensors] default_timeout`` when later or when the window is not known yet).
    """

    template_fields = ("draft_dag_id", "draft_task_id", "airflow_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        job: IngestionJob | str | os.PathLike[str],
        draft_dag_id: str | None = None,
        draft_task_id: str = "draft_run",
        airflow_conn_id: str = AirflowApiHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
        max_runs: int = DEFAULT_MAX_RUNS,
        poke_interval: float = 300.0,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.job = job
        self.draft_dag_id = draft_dag_id
        self.draft_task_id = draft_task_id
        self.airflow_conn_id = airflow_conn_id
        self.deferrable = deferrable
        self.max_runs = max_runs
        self._timeout_from_window = timeout is None

    @cached_property
    def hook(self) -> AirflowApiHook:
        return AirflowApiHook(self.airflow_conn_id)

    @cached_property
    def ingestion_job(self) -> IngestionJob:
        return resolve_job(self.job)

    @property
    def target_dag_id(self) -> str:
        return self.draft_dag_id or f"{self.ingestion_job.job_id}__draft"

    def _window_ends_at(self) -> datetime | None:
        draft = self.ingestion_job.draft
        if draft.window_ends_at is not None:
            return draft.window_ends_at
        if draft.started_at is not None:
            return draft.started_at + timedelta(days=self.ingestion_job.criteria().test_execution_days)
        return None

    def check(self) -> DraftRunsProgress:
        """Read the draft runs once (sync client) and assess them."""
        criteria = self.ingestion_job.criteria()
        runs = self.hook.list_dag_runs(self.target_dag_id, limit=self.max_runs)
        tis = self.hook.list_task_instances(
            self.target_dag_id, [run.run_id for run in runs], task_ids=[self.draft_task_id]
        )
        return assess_draft_runs(
            draft_run_evidence(runs, tis, self.draft_task_id),
            min_successful_runs=criteria.min_successful_runs,
            min_evaluation_period_days=criteria.min_evaluation_period_days,
            started_at=self.ingestion_job.draft.started_at,
            window_ends_at=self._window_ends_at(),
            test_execution_days=criteria.test_execution_days,
            now=datetime.now(UTC),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        progress = self.check()
        self.log.info("%s: %s", self.target_dag_id, progress.message)
        return PokeReturnValue(
            is_done=progress.done, xcom_value=progress.as_event() if progress.done else None
        )

    def execute(self, context: Context) -> Any:
        self._fit_timeout_to_window()
        if not self.deferrable:
            return super().execute(context)
        progress = self.check()
        self.log.info("%s: %s", self.target_dag_id, progress.message)
        if not progress.done:
            criteria = self.ingestion_job.criteria()
            self.defer(
                trigger=DraftRunsTrigger(
                    draft_dag_id=self.target_dag_id,
                    draft_task_id=self.draft_task_id,
                    min_successful_runs=criteria.min_successful_runs,
                    min_evaluation_period_days=criteria.min_evaluation_period_days,
                    started_at=self.ingestion_job.draft.started_at,
                    window_ends_at=self._window_ends_at(),
                    test_execution_days=criteria.test_execution_days,
                    airflow_conn_id=self.airflow_conn_id,
                    poke_interval=self.poke_interval,
                    max_runs=self.max_runs,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        return progress.as_event()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return its verdict, or fail with the trigger's error."""
        if not event or event.get("status") not in ("criteria_met", "window_closed"):
            message = (event or {}).get("message", "no event")
            raise AirflowException(f"Waiting for the draft runs of {self.target_dag_id} failed: {message}")
        self.log.info("%s: %s", self.target_dag_id, event.get("message"))
        return event

    def _fit_timeout_to_window(self) -> None:
        """Without an explicit timeout, wait at least until the draft window has closed."""
        window_end = self._window_ends_at()
        if not self._timeout_from_window or window_end is None:
            return
        needed = (window_end + WINDOW_GRACE - datetime.now(UTC)).total_seconds()
        self.timeout = max(self.timeout, needed)
