"""Test helpers: job files, and a real draft-run history in the metadata DB made by ``dag.test()`` runs.

A "scripted" draft DAG has one ``draft_run`` task that does what its run's conf says (push a
``draft_execution`` record, fail), so a test can lay down runs of any outcome. Its task-instance times are
then moved to the days the test wants, as if the runs had happened then.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

SCRIPTED_DRAFT_DAG = '''
"""Scripted draft DAG for tests: its draft_run task does what the run's conf says."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["test"]):

    @task(task_id="draft_run")
    def draft_run(**context):
        conf = context["dag_run"].conf or {{}}
        if conf.get("record") is not None:
            context["ti"].xcom_push(key="draft_execution", value=conf["record"])
        if conf.get("fail"):
            raise RuntimeError(conf["fail"])

    draft_run()
'''


def job_document(job_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid job file's content; ``overrides`` replace top-level keys."""
    doc: dict[str, Any] = {
        "job_id": job_id,
        "job_name": f"Job {job_id}",
        "tenant": "sales",
        "owner": "data@example.com",
        "image": "registry.example.com/ingest/orders:1.0.0",
        "schedule_config": {"cron": "0 2 * * *"},
        "resource_requirements": {"cpu_cores": 1, "memory_gb": 2, "estimated_runtime_minutes": 10},
        "sla_requirements": {"max_runtime": 30, "success_rate": 0.9},
        "status": "draft",
        "draft": {"started_at": T0.isoformat(), "window_ends_at": (T0 + timedelta(days=7)).isoformat()},
    }
    doc.update(overrides)
    return doc


def write_job(folder: Path, job_id: str, **overrides: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.yaml"
    path.write_text(yaml.safe_dump(job_document(job_id, **overrides), sort_keys=False))
    return path


def write_scripted_draft_dag(dags_folder: Path, dag_id: str) -> Path:
    path = dags_folder / f"{dag_id}.py"
    path.write_text(textwrap.dedent(SCRIPTED_DRAFT_DAG.format(dag_id=dag_id)).lstrip())
    return path


def record(job_id: str, execution_id: str, created_at: datetime, **fields: Any) -> dict[str, Any]:
    """A ``draft_execution`` XCom as DraftRunOperator pushes it (JSON-safe)."""
    doc: dict[str, Any] = {
        "execution_id": execution_id,
        "job_id": job_id,
        "status": "completed",
        "created_at": created_at.isoformat(),
        "actual_runtime_minutes": 8.0,
        "allocated_resources": {"cpu_cores": 1.1, "memory_gb": 2.2},
        "resource_usage": {"avg_cpu_utilization": 0.85, "peak_memory_usage_gb": 1.7},
        "data_quality_results": {"checks": [{"name": "not_null", "status": "passed"}]},
        "records_processed": 1000,
        "records_failed": 0,
        "try_number": 1,
    }
    doc.update(fields)
    return doc


def run_draft(
    dag: Any, day: int, *, conf: dict[str, Any] | None = None, start: datetime | None = None
) -> str:
    """One draft run via ``dag.test()``, then its times moved to ``start`` (default ``T0 + day``).

    :returns: the run id.
    """
    logical_date = T0 + timedelta(days=day)
    dag_run = dag.test(logical_date=logical_date, run_conf=conf or {})
    move_run(dag.dag_id, dag_run.run_id, start or logical_date)
    return str(dag_run.run_id)


def move_run(dag_id: str, run_id: str, start: datetime, minutes: float = 8.0) -> None:
    """Pretend a finished run started at ``start`` and took ``minutes`` (test set-up writes the DB)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    end = start + timedelta(minutes=minutes)
    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .values(start_date=start, end_date=end, duration=minutes * 60)
        )
        session.execute(
            update(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            .values(start_date=start, end_date=end)
        )
