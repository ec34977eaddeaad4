"""End-to-end fixtures: the example jobs on a real ``airflow standalone`` (PostgreSQL when a URL is given)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_sla_promotion.devtools.stack import AirflowStack, StackError, StackSettings, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    StartStack = Callable[[list[str]], tuple[AirflowStack, Path]]

#: A PostgreSQL SQLAlchemy URL; the test creates (and drops) a scratch database next to the one named.
DATABASE_URL_VARIABLE = "SLA_PROMOTION_E2E_DATABASE_URL"
REPO_ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def e2e_database_url() -> Iterator[str | None]:
    """A scratch PostgreSQL database for the session, or None (SQLite) when no URL is configured."""
    url = os.environ.get(DATABASE_URL_VARIABLE, "").strip()
    if not url:
        if in_ci():
            pytest.fail(
                f"CI=true needs PostgreSQL for the end-to-end test: set {DATABASE_URL_VARIABLE}",
                pytrace=False,
            )
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    base = make_url(url)
    if not base.drivername.startswith("postgresql"):
        pytest.fail(f"{DATABASE_URL_VARIABLE} must be a PostgreSQL URL, got {base.drivername}", pytrace=False)
    scratch = f"sla_promotion_e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{scratch}"'))
    except SQLAlchemyError as error:
        admin.dispose()
        pytest.fail(
            f"cannot create a scratch database through {DATABASE_URL_VARIABLE}: {error}", pytrace=False
        )
    try:
        yield base.set(database=scratch).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()


def prepare_tree(root: Path, job_ids: list[str]) -> tuple[Path, Path]:
    """A DAGs folder with the DAG factory file and a jobs folder with copies of the given example jobs."""
    dags, jobs = root / "dags", root / "jobs"
    dags.mkdir(parents=True)
    jobs.mkdir(parents=True)
    factory = REPO_ROOT / "dags" / "sla_promotion_jobs.py"
    if not factory.exists():
        pytest.fail(f"the DAG factory file {factory} is missing", pytrace=False)
    shutil.copy2(factory, dags / factory.name)
    for job_id in job_ids:
        shutil.copy2(REPO_ROOT / "dags" / "jobs" / f"{job_id}.yaml", jobs / f"{job_id}.yaml")
    return dags, jobs


@pytest.fixture(scope="module")
def standalone_factory(
    tmp_path_factory: pytest.TempPathFactory, e2e_database_url: str | None
) -> Iterator[StartStack]:
    """Start ``airflow standalone`` + the emulator on copies of the given example jobs; stopped after the module."""
    started: list[AirflowStack] = []

    def start(job_ids: list[str]) -> tuple[AirflowStack, Path]:
        root = tmp_path_factory.mktemp("standalone")
        dags, jobs = prepare_tree(root, job_ids)
        stack = AirflowStack(
            StackSettings(
                home=root / "airflow",
                dags_folder=dags,
                jobs_folder=jobs,
                api_port=free_port(),
                database_url=e2e_database_url,
                python_paths=(REPO_ROOT / "examples" / "ingestion",),
                extra_env={
                    "AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA": "True",
                    "SLA_PROMOTION_EXAMPLES_DATA_DIR": str(root / "data"),
                },
                startup_timeout=240.0,
            )
        )
        started.append(stack)
        try:
            stack.start()
        except StackError as error:
            # A standalone that does not come up is a failure, never a skip.
            pytest.fail(f"airflow standalone did not come up: {error}", pytrace=False)
        return stack, jobs

    yield start
    leftovers: dict[str, list[int]] = {}
    for stack in started:
        stack.stop()
        if pids := stack.leftover_processes():
            leftovers[str(stack.home)] = pids
    assert not leftovers, f"processes left behind by the stack: {leftovers}"
