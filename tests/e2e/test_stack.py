"""The local stack's own guarantees: a busy port fails clearly, timeouts name the step, no process survives."""

from __future__ import annotations

import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflow_sla_promotion.devtools.stack import (
    AirflowStack,
    StackError,
    StackSettings,
    free_port,
    port_is_free,
    render_log,
    wait_until,
)


def _settings(root: Path, port: int) -> StackSettings:
    return StackSettings(
        home=root / "home", dags_folder=root / "dags", jobs_folder=root / "jobs", api_port=port
    )


def test_busy_port_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        stack = AirflowStack(_settings(tmp_path, port))
        with pytest.raises(StackError, match=rf"port {port} on 127.0.0.1 is busy"):
            stack.start()
    assert not stack.kubeconfig.exists()
    assert stack.leftover_processes() == []


def test_timeout_names_the_step_and_shows_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "component.log"
    log.write_text("".join(f"line {number}\n" for number in range(100)))
    with pytest.raises(StackError) as raised:
        wait_until("start the thing", lambda: False, timeout=0.2, interval=0.05, logs=[log])
    message = str(raised.value)
    assert "step 'start the thing' failed: timed out" in message
    assert "line 99" in message
    assert "line 10\n" not in message


def test_dead_dependency_ends_the_wait_at_once(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="emulator exited with code 3"):
        wait_until(
            "start", lambda: False, timeout=60, interval=0.05, alive=lambda: "emulator exited with code 3"
        )


def test_stop_ends_descendants_that_left_the_process_group(tmp_path: Path) -> None:
    """Airflow's task processes call setpgid; stopping must still end them."""
    stack = AirflowStack(_settings(tmp_path, free_port()))
    stack.home.mkdir(parents=True)
    pid_file = tmp_path / "grandchild.pid"
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
        """
    )
    stack._spawn("parent", [sys.executable, "-c", script], stack.home / "parent.log")
    wait_until("grandchild started", pid_file.exists, timeout=30, interval=0.05)
    wait_until("both marked", lambda: len(stack.leftover_processes()) == 2, timeout=30, interval=0.05)
    stack.stop(grace=5)
    assert stack.leftover_processes() == []
    grandchild = int(pid_file.read_text())
    assert (
        not Path(f"/proc/{grandchild}").exists()
        or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
    )


def test_environment_isolates_the_stack_from_the_callers_airflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING_ELSE", "http://elsewhere")
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    stack = AirflowStack(_settings(tmp_path, 18123))
    env = stack.environment()
    assert env["AIRFLOW__CORE__UNIT_TEST_MODE"] == "False"
    assert "AIRFLOW_CONN_SOMETHING_ELSE" not in env
    assert "KUBECONFIG" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    assert '"host": "http://127.0.0.1:18123"' in env["AIRFLOW_CONN_AIRFLOW_API_DEFAULT"]
    # Every component must share the same secrets.
    assert stack.environment()["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_render_log_turns_structured_entries_into_lines() -> None:
    content = [{"event": "criteria table", "level": "info", "timestamp": "t"}, "plain source line"]
    assert render_log(content) == "[info] criteria table\nplain source line"


def test_port_is_free_for_an_unused_port() -> None:
    deadline = time.monotonic() + 5
    while not port_is_free(port := free_port()) and time.monotonic() < deadline:
        pass
    assert port_is_free(port)
