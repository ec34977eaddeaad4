"""DraftRunsTrigger: waits in the triggerer until a draft DAG has enough evidence or its window closes."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_sla_promotion.hooks.airflow_api import AirflowApiHook
from airflow_sla_promotion.policy.evidence import RunEvidence, assess_evidence, counted
from airflow_sla_promotion.spec import PromotionCriteria

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from airflow_sla_promotion.hooks.airflow_api import ApiDagRun, ApiTaskInstance

#: Task-instance states after which a draft run is over; anything else is still in flight.
FINISHED_TI_STATES = frozenset({"success", "failed", "upstream_failed"})
FINISHED_RUN_STATES = frozenset({"success", "failed"})
#: How many of the draft DAG's newest runs are read at most (a week of 4-hourly runs is 42).
DEFAULT_MAX_RUNS = 1000

DraftRunsStatus = Literal["criteria_met", "window_closed", "waiting"]


@dataclass(frozen=True)
class DraftRunsProgress:
    """Where a draft DAG stands against the evidence criteria; the sensor's XCom and the trigger's event."""

    status: DraftRunsStatus
    successful_runs: int
    total_runs: int
    evaluation_period_days: int
    required_successful_runs: int
    required_period_days: int
    window_ends_at: str | None
    message: str

    @property
    def done(self) -> bool:
        return self.status != "waiting"

    def as_event(self) -> dict[str, Any]:
        """JSON-safe payload: ``{"status", "message", "successful_runs", ...}``."""
        return asdict(self)


def draft_run_evidence(
    runs: Iterable[ApiDagRun], task_instances: Iterable[ApiTaskInstance], draft_task_id: str
) -> list[RunEvidence]:
    """One :class:`RunEvidence` per finished draft run.

    The run's start is the ``draft_task_id`` task instance's start (the run's own start when the task
    never started); it succeeded when that task instance succeeded. Runs still in flight are left out,
    as the decision only sees runs that left a final state.
    """
    by_run: dict[str, ApiTaskInstance] = {}
    for candidate in task_instances:
        if candidate.task_id == draft_task_id and candidate.map_index in (-1, 0):
            by_run.setdefault(candidate.run_id, candidate)
    evidence = []
    for run in runs:
        ti = by_run.get(run.run_id)
        if ti is not None and ti.state in FINISHED_TI_STATES:
            succeeded = ti.state == "success"
        elif run.state in FINISHED_RUN_STATES:
            # The run ended but its draft task did not run to an end (removed, skipped, never started).
            succeeded = False
        else:
            continue
        created_at = (ti.start_date if ti is not None else None) or run.start_date or run.run_after
        if created_at is None:
            continue
        evidence.append(RunEvidence(created_at=created_at, succeeded=succeeded))
    return evidence


def assess_draft_runs(
    evidence: Iterable[RunEvidence],
    *,
    min_successful_runs: int,
    min_evaluation_period_days: int,
    started_at: datetime | None,
    window_ends_at: datetime | None,
    test_execution_days: int,
    now: datetime,
) -> DraftRunsProgress:
    """Whether the draft evidence suffices (``policy.evidence``, the decision's rule) or the window closed.

    With neither ``window_ends_at`` nor ``started_at`` known, the window is ``test_execution_days`` from
    the first counted run; with no run yet it is open.
    """
    runs = list(evidence)
    criteria = PromotionCriteria(
        min_successful_runs=min_successful_runs, min_evaluation_period_days=min_evaluation_period_days
    )
    status = assess_evidence(runs, criteria, started_at)
    window_end = window_ends_at
    if window_end is None:
        kept = counted(runs, started_at)
        start = started_at or (kept[0].created_at if kept else None)
        window_end = start + timedelta(days=test_execution_days) if start is not None else None
    summary = (
        f"{status.successful_runs}/{status.required_successful_runs} successful runs, "
        f"{status.evaluation_period_days}/{status.required_period_days} days of evaluation "
        f"({status.total_runs} finished runs counted)"
    )
    result: DraftRunsStatus
    if status.enough:
        result, message = "criteria_met", f"Enough draft evidence: {summary}."
    elif window_end is not None and now >= window_end:
        result, message = "window_closed", f"The draft window closed at {window_end.isoformat()}: {summary}."
    else:
        until = f"; the window closes at {window_end.isoformat()}" if window_end else ""
        result, message = "waiting", f"Waiting for draft evidence: {summary}{until}."
    return DraftRunsProgress(
        status=result,
        successful_runs=status.successful_runs,
        total_runs=status.total_runs,
        evaluation_period_days=status.evaluation_period_days,
        required_successful_runs=status.required_successful_runs,
        required_period_days=status.required_period_days,
        window_ends_at=window_end.isoformat() if window_end else None,
        message=message,
    )


class DraftRunsTrigger(BaseTrigger):
    """
    Polls the Airflow REST API until a draft DAG has enough evidence for a promotion decision.

    Fires once: ``{"status": "criteria_met" | "window_closed", "message", "successful_runs", ...}``, or
    ``{"status": "error", "message"}`` when the API cannot be read. Uses the async client of
    :class:`~airflow_sla_promotion.hooks.airflow_api.AirflowApiHook`, never the metadata DB.

    :param draft_dag_id: the draft DAG (``<job_id>__draft``).
    :param draft_task_id: the task whose instances are the draft runs.
    :param min_successful_runs: successful runs required.
    :param min_evaluation_period_days: whole days required between the first and last counted run.
    :param started_at: start of the draft window; earlier runs do not count.
    :param window_ends_at: end of the draft window; None derives it (see :func:`assess_draft_runs`).
    :param test_execution_days: length of the window when its end is not known.
    :param airflow_conn_id: connection of type ``airflow_api``.
    :param poke_interval: seconds between two reads of the API.
    :param max_runs: newest draft runs read at most.
    """

    def __init__(
        self,
        *,
        draft_dag_id: str,
        draft_task_id: str = "draft_run",
        min_successful_runs: int,
        min_evaluation_period_days: int,
        started_at: datetime | None = None,
        window_ends_at: datetime | None = None,
        test_execution_days: int = 7,
        airflow_conn_id: str = AirflowApiHook.default_conn_name,
        poke_interval: float = 300.0,
        max_runs: int = DEFAULT_MAX_RUNS,
    ) -> None:
        super().__init__()
        self.draft_dag_id = draft_dag_id
        self.draft_task_id = draft_task_id
        self.min_successful_runs = min_successful_runs
        self.min_evaluation_period_days = min_evaluation_period_days
        self.started_at = started_at
        self.window_ends_at = window_ends_at
        self.test_execution_days = test_execution_days
        self.airflow_conn_id = airflow_conn_id
        self.poke_interval = poke_interval
        self.max_runs = max_runs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "draft_dag_id": self.draft_dag_id,
                "draft_task_id": self.draft_task_id,
                "min_successful_runs": self.min_successful_runs,
                "min_evaluation_period_days": self.min_evaluation_period_days,
                "started_at": self.started_at,
                "window_ends_at": self.window_ends_at,
                "test_execution_days": self.test_execution_days,
                "airflow_conn_id": self.airflow_conn_id,
                "poke_interval": self.poke_interval,
                "max_runs": self.max_runs,
            },
        )

    def _hook(self) -> AirflowApiHook:
        return AirflowApiHook(self.airflow_conn_id)

    async def check(self, hook: AirflowApiHook) -> DraftRunsProgress:
        """Read the draft runs once and assess them."""
        runs = await hook.alist_dag_runs(self.draft_dag_id, limit=self.max_runs)
        tis = await hook.alist_task_instances(
            self.draft_dag_id, [run.run_id for run in runs], task_ids=[self.draft_task_id]
        )
        return assess_draft_runs(
            draft_run_evidence(runs, tis, self.draft_task_id),
            min_successful_runs=self.min_successful_runs,
            min_evaluation_period_days=self.min_evaluation_period_days,
            started_at=self.started_at,
            window_ends_at=self.window_ends_at,
            test_execution_days=self.test_execution_days,
            now=datetime.now(UTC),
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            while True:
                progress = await self.check(hook)
                if progress.done:
                    self.log.info("%s: %s", self.draft_dag_id, progress.message)
                    yield TriggerEvent(progress.as_event())
                    return
                self.log.info("%s: %s", self.draft_dag_id, progress.message)
                await asyncio.sleep(self.poke_interval)
        except Exception as err:
            # The sensor turns this into a task failure with the reason; the trigger itself never crashes.
            yield TriggerEvent({"status": "error", "message": f"{type(err).__name__}: {err}"})
