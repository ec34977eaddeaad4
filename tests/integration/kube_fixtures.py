"""Reusable pytest fixtures: an in-process Kubernetes API emulator, its kubeconfig, and a task context.

Imported by ``tests/integration/conftest.py`` for every test there; another test folder imports the
fixtures it needs from here into its own conftest the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from airflow_sla_promotion.devtools.kube_emulator import KubeEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A running emulator in local-process mode (pods run their command as local processes)."""
    with KubeEmulator(mode="local-process") as emulator:
        yield emulator


@pytest.fixture
def scripted_kube_emulator() -> Iterator[KubeEmulator]:
    """A running emulator in scripted mode (pods follow ``PodScript``s; default: succeed at once)."""
    with KubeEmulator(mode="scripted") as emulator:
        yield emulator


@pytest.fixture
def kubeconfig(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A kubeconfig file for whichever emulator fixture the test uses (local-process by default)."""
    names = request.fixturenames
    emulator = request.getfixturevalue(
        "scripted_kube_emulator" if "scripted_kube_emulator" in names else "kube_emulator"
    )
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubernetes_default_connection(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``kubernetes_default`` pointing at the emulator through ``kube_config_path`` (no ``config_file``)."""
    conn = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(conn))
    return "kubernetes_default"


@dataclass
class RecordingTaskInstance:
    """The part of a runtime task instance KubernetesPodOperator uses; XComs land in ``xcoms``.

    For tests that call ``execute`` / ``trigger_reentry`` directly (to see ``TaskDeferred`` and run the
    trigger by hand); ``dag.test()`` tests get the real one.
    """

    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1
    map_index: int = -1
    start_date: datetime = field(default_factory=lambda: datetime.now(UTC))
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        # Round-trip through JSON like the XCom backend, so non-JSON values fail here too.
        self.xcoms[key] = json.loads(json.dumps(value))


def task_context(
    task: Any,
    *,
    dag_id: str = "emulator_tests",
    run_id: str = "manual__2026-01-01T00:00:00+00:00",
    try_number: int = 1,
) -> dict[str, Any]:
    """A minimal context for calling an operator's ``execute`` outside a DAG run."""
    ti = RecordingTaskInstance(dag_id=dag_id, task_id=task.task_id, run_id=run_id, try_number=try_number)
    return {"ti": ti, "task_instance": ti, "run_id": run_id, "dag": None, "task": task}
