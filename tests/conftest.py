"""Test-wide setup: an isolated AIRFLOW_HOME (SQLite, its own DAGs folder) before Airflow is imported."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="sla-promotion-airflow-"))
_DAGS_FOLDER = _AIRFLOW_HOME / "dags"
_DAGS_FOLDER.mkdir()
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://127.0.0.1:8080/execution/")
# Tests never read a developer's kubeconfig.
os.environ.pop("KUBECONFIG", None)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    """The DAGs folder of the test Airflow; ``dag.test()`` needs DAGs to live in a file here."""
    return _DAGS_FOLDER


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated SQLite metadata DB, created once per test session."""
    from airflow.utils import db

    db.initdb()
    return airflow_home / "airflow.db"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def load_dag_file(path: Path, dag_id: str):  # type: ignore[no-untyped-def]
    """Parse one DAG file with a real DagBag (import errors fail the test) and return the DAG.

    Run it with ``dag.test()``; the file must be inside the ``dags_folder`` fixture's folder.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]
