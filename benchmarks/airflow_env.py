"""An isolated Airflow for the REST-API benchmarks: metadata DB with draft runs, in-process API server.

``python -m benchmarks.airflow_env setup DIR`` creates ``DIR/template.db`` once per benchmark run: a
migrated SQLite metadata DB in which one real ``dag.test()`` run of a scripted draft DAG left the
serialized DAG, its version, a run, a task instance and a ``draft_execution`` XCom. A case process
copies it (:func:`prepare_home`, before Airflow is imported), clones that run as often as it needs
(:func:`add_draft_runs`, plain inserts: set-up, not measured) and serves the real REST API v2 over it
(:func:`serve_api`), counting the requests it answers by kind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, MutableMapping

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
JOB_ID = "bench_promotion"
DRAFT_DAG_ID = f"{JOB_ID}__draft"
TASK_ID = "draft_run"
CONN_ENV = "AIRFLOW_CONN_AIRFLOW_API_DEFAULT"
USERNAME = "admin"

SCRIPTED_DRAFT_DAG = f'''
"""Draft DAG for the benchmarks: its draft_run task pushes the record in the run's conf."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG({DRAFT_DAG_ID!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task(task_id={TASK_ID!r})
    def draft_run(**context):
        context["ti"].xcom_push(key="draft_execution", value=context["dag_run"].conf["record"])

    draft_run()
'''


def prepare_home(template: Path | None) -> Path:
    """A fresh AIRFLOW_HOME (copy of ``template`` when given); call before importing Airflow."""
    home = Path(tempfile.mkdtemp(prefix="bench-airflow-"))
    (home / "dags").mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:8080/execution/",
        }
    )
    os.environ.pop("KUBECONFIG", None)
    if template is not None:
        copy_db(template, home / "airflow.db")
    return home


def copy_db(source: Path, target: Path) -> None:
    """Copy a SQLite DB with its write-ahead log folded in (a plain file copy can miss the WAL)."""
    import sqlite3

    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def cleanup_home(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)


def record(index: int, created_at: datetime, *, failed: bool = False) -> dict[str, Any]:
    """A ``draft_execution`` XCom as DraftRunOperator pushes it."""
    return {
        "execution_id": f"bench-run-{index:05d}",
        "job_id": JOB_ID,
        "status": "failed" if failed else "completed",
        "created_at": created_at.isoformat(),
        "actual_runtime_minutes": 8.0 + (index % 5) * 0.2,
        "allocated_resources": {"cpu_cores": 1.1, "memory_gb": 2.2},
        "resource_usage": {"avg_cpu_utilization": 0.85, "peak_memory_usage_gb": 1.7},
        "data_quality_results": {"checks": [{"name": "not_null", "status": "passed"}]},
        "records_processed": 1000,
        "records_failed": 0,
        "try_number": 1,
        "failure_reason": "exit code 1 (Error)" if failed else None,
    }


def job_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "job_id": JOB_ID,
        "job_name": "Benchmark promotion job",
        "tenant": "bench",
        "owner": "bench-team",
        "image": "registry.example.com/bench/ingest:1.0.0",
        "schedule_config": {"cron": "0 2 * * *"},
        "resource_requirements": {"cpu_cores": 1, "memory_gb": 2, "estimated_runtime_minutes": 10},
        "sla_requirements": {"max_runtime": 30, "success_rate": 0.9},
        "status": "draft",
        "draft": {"started_at": T0.isoformat(), "window_ends_at": (T0 + timedelta(days=400)).isoformat()},
    }
    document.update(overrides)
    return document


def setup(directory: Path) -> Path:
    """Create ``directory/template.db`` (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    home = prepare_home(None)
    try:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.initdb()
        path = home / "dags" / f"{DRAFT_DAG_ID}.py"
        path.write_text(SCRIPTED_DRAFT_DAG.lstrip())
        bag = DagBag(dag_folder=str(path))
        if bag.import_errors:
            raise RuntimeError(f"draft DAG did not import: {bag.import_errors}")
        bag.dags[DRAFT_DAG_ID].test(logical_date=T0, run_conf={"record": record(0, T0)})
        target = directory / "template.db"
        from airflow.settings import dispose_orm

        dispose_orm()
        copy_db(home / "airflow.db", target)
        return target
    finally:
        cleanup_home(home)


def add_draft_runs(
    count: int, *, start_index: int = 1, failed_every: int = 0, spacing_hours: float = 12
) -> None:
    """Clone the template's run ``count`` times (run, task instance, XCom), one every ``spacing_hours``.

    Run ``i`` starts at ``T0 + i * spacing_hours``; every ``failed_every``-th run failed (0: none).
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select, update

    runs, tis, xcoms = DagRun.__table__, TaskInstance.__table__, XComModel.__table__
    with create_session() as session:
        run_row = dict(session.execute(select(runs).where(runs.c.dag_id == DRAFT_DAG_ID)).mappings().first())
        ti_row = dict(session.execute(select(tis).where(tis.c.dag_id == DRAFT_DAG_ID)).mappings().first())
        xcom_row = dict(
            session.execute(select(xcoms).where(xcoms.c.dag_id == DRAFT_DAG_ID)).mappings().first()
        )
        # The template run took a moment at set-up time; make it look like the others (run 0 at T0).
        session.execute(
            update(runs)
            .where(runs.c.id == run_row["id"])
            .values(start_date=T0, end_date=T0 + timedelta(minutes=8), run_after=T0, queued_at=T0)
        )
        session.execute(
            update(tis)
            .where(tis.c.id == ti_row["id"])
            .values(start_date=T0, end_date=T0 + timedelta(minutes=8), queued_dttm=T0, duration=480.0)
        )
        for index in range(start_index, start_index + count):
            start = T0 + timedelta(hours=spacing_hours * index)
            end = start + timedelta(minutes=8)
            failed = failed_every > 0 and index % failed_every == 0
            run_id = f"manual__bench_{index:05d}"
            new_run = {key: value for key, value in run_row.items() if key != "id"}
            new_run.update(
                run_id=run_id,
                logical_date=start,
                run_after=start,
                queued_at=start,
                start_date=start,
                end_date=end,
                state="failed" if failed else "success",
                conf={"record": record(index, start, failed=failed)},
            )
            for key in ("data_interval_start", "data_interval_end"):
                if key in new_run:
                    new_run[key] = start
            dag_run_id = session.execute(insert(runs).values(**new_run)).inserted_primary_key[0]
            new_ti = dict(ti_row)
            new_ti.update(
                id=uuid.uuid4(),
                run_id=run_id,
                start_date=start,
                end_date=end,
                queued_dttm=start,
                duration=480.0,
                state="failed" if failed else "success",
            )
            session.execute(insert(tis).values(**new_ti))
            new_xcom = dict(xcom_row)
            new_xcom.update(
                dag_run_id=dag_run_id,
                run_id=run_id,
                timestamp=end,
                value=XComModel.serialize_value(record(index, start, failed=failed)),
            )
            session.execute(insert(xcoms).values(**new_xcom))


def request_kind(method: str, path: str) -> str:
    """A request's kind for counting: login, dag_runs_list, task_instances_list, xcom, ..."""
    if path.endswith("/auth/token"):
        return "login"
    if path.endswith("/dagRuns/list"):
        return "dag_runs_list"
    if path.endswith("/taskInstances/list"):
        return "task_instances_list"
    if "/xcomEntries/" in path:
        return "xcom"
    if method == "PATCH" and "/dags/" in path:
        return "dag_patch"
    return f"{method} {path}"


@dataclass
class ApiServer:
    url: str
    counts: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.counts.clear()


def _counting(
    app: Any, counts: Counter[str]
) -> Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]:
    async def wrapped(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            counts[request_kind(scope["method"], scope["path"])] += 1
        await app(scope, receive, send)

    return wrapped


def serve_api() -> Iterator[ApiServer]:
    """The real REST API v2 (``create_app(apps="core")``) on 127.0.0.1 in a thread; sets the connection."""
    import uvicorn

    password = secrets.token_urlsafe(16)
    passwords = Path(os.environ["AIRFLOW_HOME"]) / "passwords.json"
    passwords.write_text(json.dumps({USERNAME: password}))
    os.environ.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        }
    )
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    server_info = ApiServer(url="")
    app = _counting(create_app(apps="core"), server_info.counts)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process API server did not start")
        time.sleep(0.05)
    server_info.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    os.environ[CONN_ENV] = json.dumps(
        {"conn_type": "airflow_api", "host": server_info.url, "login": USERNAME, "password": password}
    )
    try:
        yield server_info
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "setup":
        raise SystemExit("usage: python -m benchmarks.airflow_env setup DIR")
    print(json.dumps({"template": str(setup(Path(sys.argv[2])))}))
