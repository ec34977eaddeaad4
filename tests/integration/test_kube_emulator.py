"""The real KubernetesPodOperator (sync and deferrable) and the raw API against the local emulator."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLaunchFailedException
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_sla_promotion.devtools.kube_emulator import KubeEmulator, PodScript
from tests.integration.kube_fixtures import task_context

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration
NS = "draft-ingestion-ns"


def _kpo(task_id: str, code: str, **kwargs) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        namespace=NS,
        image="ignored:latest",
        cmds=[sys.executable, "-c", code],
        startup_check_interval_seconds=1,
        poll_interval=0.5,
        **kwargs,
    )


def _base_terminated(pod) -> object:
    return next(s for s in pod.status.container_statuses if s.name == "base").state.terminated


def test_sync_success_runs_the_command_and_follows_the_kpo_call_sequence(
    kube_emulator: KubeEmulator, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    op = _kpo(
        "say_hello",
        "import sys; print('hello from the pod'); print('to stderr', file=sys.stderr)",
        config_file=str(kubeconfig),
        env_vars={"GREETING": "hi"},
    )
    context = task_context(op)
    op.execute(context)
    output = capsys.readouterr().out

    assert "hello from the pod" in output
    assert "to stderr" in output
    terminated = _base_terminated(op.remote_pod)
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert context["ti"].xcoms["pod_namespace"] == NS
    name = context["ti"].xcoms["pod_name"]
    assert name.startswith("say-hello")

    calls = [(r.method, r.path.removeprefix(f"/api/v1/namespaces/{NS}/")) for r in kube_emulator.requests]
    assert calls[0] == ("GET", "pods")
    assert calls[1] == ("POST", "pods")
    assert ("GET", f"pods/{name}/log") in calls
    assert calls[-1] == ("DELETE", f"pods/{name}")
    assert not any(method == "PATCH" for method, _ in calls)  # only failed pods are marked checked
    selector = kube_emulator.requests[0].query["labelSelector"]
    assert "already_checked!=True" in selector
    assert "!airflow-worker" in selector
    post = kube_emulator.find_requests("POST")[0].body
    env = {e["name"]: e["value"] for e in post["spec"]["containers"][0]["env"]}
    assert env["GREETING"] == "hi"
    assert kube_emulator.pods() == []


def test_pod_env_reaches_the_process(kube_emulator: KubeEmulator, kubeconfig: Path, capsys) -> None:
    code = "import os; print('seen', os.environ['GREETING'], os.environ['SLA_PROMOTION_USAGE_SOURCE'])"
    op = _kpo("env_check", code, config_file=str(kubeconfig), env_vars={"GREETING": "hola"})
    op.execute(task_context(op))
    output = capsys.readouterr().out
    assert "seen hola rusage" in output


def test_sync_exit_code_failure_marks_the_pod_checked_and_keeps_the_termination_message(
    kube_emulator: KubeEmulator, kubeconfig: Path
) -> None:
    code = (
        "import os, sys\n"
        "open(os.environ['SLA_PROMOTION_TERMINATION_LOG'], 'w').write('{\"v\": 1, \"why\": \"bad input\"}')\n"
        "sys.exit(3)\n"
    )
    op = _kpo("fails", code, config_file=str(kubeconfig))
    with pytest.raises(AirflowException, match="returned a failure"):
        op.execute(task_context(op))
    terminated = _base_terminated(op.remote_pod)
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert json.loads(terminated.message) == {"v": 1, "why": "bad input"}
    assert op.remote_pod.status.phase == "Failed"
    patch = kube_emulator.find_requests("PATCH")[0]
    assert patch.body == {"metadata": {"labels": {"already_checked": "True"}}}
    assert kube_emulator.find_requests("DELETE")
    assert kube_emulator.pods() == []


def test_local_process_over_its_memory_limit_is_oomkilled(
    kube_emulator: KubeEmulator, kubeconfig: Path
) -> None:
    from kubernetes.client import models as k8s

    code = (
        "import time\nblocks = []\n"
        "for _ in range(40):\n    blocks.append(b'x' * (10 * 2**20)); time.sleep(0.02)\n"
        "print('survived')\n"
    )
    op = _kpo(
        "hungry",
        code,
        config_file=str(kubeconfig),
        container_resources=k8s.V1ResourceRequirements(
            limits={"memory": "100Mi"}, requests={"memory": "100Mi"}
        ),
    )
    with pytest.raises(AirflowException, match="returned a failure"):
        op.execute(task_context(op))
    terminated = _base_terminated(op.remote_pod)
    assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")
    assert any(event["reason"] == "OOMKilling" for event in kube_emulator.events())


def test_image_pull_error_fails_the_launch(scripted_kube_emulator: KubeEmulator, kubeconfig: Path) -> None:
    scripted_kube_emulator.add_script(
        PodScript(waiting_reason="ErrImagePull", waiting_message="manifest unknown"),
        labels={"task_id": "pull"},
    )
    op = _kpo("pull", "print('never')", config_file=str(kubeconfig))
    with pytest.raises((PodLaunchFailedException, AirflowException)) as raised:
        op.execute(task_context(op))
    chain = f"{raised.value} {raised.value.__context__}"
    assert "ErrImagePull" in chain or "returned a failure" in chain
    # The pod never ran: no log was requested and it was cleaned up.
    assert not scripted_kube_emulator.find_requests("GET", path_endswith="/log")
    assert scripted_kube_emulator.find_requests("DELETE")


def test_never_scheduled_pod_times_out(scripted_kube_emulator: KubeEmulator, kubeconfig: Path) -> None:
    scripted_kube_emulator.add_script(PodScript(schedule=False))
    op = _kpo("stuck", "print('never')", config_file=str(kubeconfig), schedule_timeout_seconds=1)
    with pytest.raises(AirflowException):
        op.execute(task_context(op))
    assert any(event["reason"] == "FailedScheduling" for event in scripted_kube_emulator.events())


def test_scripted_pod_logs_exit_code_and_message(
    scripted_kube_emulator: KubeEmulator, kubeconfig: Path, capsys
) -> None:
    scripted_kube_emulator.add_script(
        PodScript(logs=("step one", "step two"), exit_code=0, termination_message='{"v": 1}', run_seconds=0.3)
    )
    op = _kpo("scripted", "ignored", config_file=str(kubeconfig))
    op.execute(task_context(op))
    output = capsys.readouterr().out
    assert "step one" in output
    assert "step two" in output
    assert _base_terminated(op.remote_pod).message == '{"v": 1}'


def test_deferrable_defers_round_trips_the_trigger_and_reenters(
    kube_emulator: KubeEmulator, kubernetes_default_connection: str, capsys
) -> None:
    # Through the kubernetes_default connection (kube_config_path extra) with no config_file:
    # config_file together with the extra would make the trigger fail ("mutually exclusive").
    op = _kpo("deferred", "import time; time.sleep(0.5); print('deferred done')", deferrable=True)
    context = task_context(op)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)

    async def first_event():
        return await rebuilt.run().asend(None)

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success"
    assert event.payload["name"] == context["ti"].xcoms["pod_name"]

    getattr(op, deferred.value.method_name)(context, event.payload)
    output = capsys.readouterr().out
    assert "deferred done" in output
    assert kube_emulator.pods() == []
    assert kube_emulator.find_requests("DELETE")


def test_deferrable_failure_raises_on_reentry(
    kube_emulator: KubeEmulator, kubernetes_default_connection: str
) -> None:
    op = _kpo("deferred_fail", "import sys; sys.exit(2)", deferrable=True)
    context = task_context(op)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    event = asyncio.run(deferred.value.trigger.run().asend(None))
    assert event.payload["status"] == "failed"
    with pytest.raises(AirflowException):
        op.trigger_reentry(context, event.payload)
    assert kube_emulator.find_requests("PATCH")


def test_job_report_measures_a_real_local_process(kube_emulator: KubeEmulator, kubeconfig: Path) -> None:
    # ~300 MB touched and ~1.5 s of CPU, reported by job_report from getrusage.
    code = (
        "import time\n"
        "from airflow_sla_promotion import job_report\n"
        "block = b'x' * (300 * 10**6)\n"
        "end = time.process_time() + 1.5\n"
        "while time.process_time() < end: pass\n"
        "job_report.report(records_processed=10)\n"
    )
    from kubernetes.client import models as k8s

    op = _kpo(
        "measured",
        code,
        config_file=str(kubeconfig),
        container_resources=k8s.V1ResourceRequirements(limits={"memory": "1Gi"}, requests={"memory": "1Gi"}),
    )
    op.execute(task_context(op))
    terminated = _base_terminated(op.remote_pod)
    report = json.loads(terminated.message)
    # Peak memory: the 300 MB block plus the interpreter (stated tolerance: at most +150 MB).
    assert 300 * 10**6 <= report["peak_memory_bytes"] <= 450 * 10**6
    # CPU: the 1.5 s busy loop plus start-up and the allocation (stated tolerance: +0.8 s).
    assert 1.5 <= report["cpu_seconds"] <= 2.3
    # One single-threaded process: CPU time cannot exceed wall time, and wall time fits in the
    # container's start/finish window (whole-second timestamps, so +1 s).
    assert report["cpu_seconds"] <= report["wall_seconds"] * 1.02
    container_seconds = (terminated.finished_at - terminated.started_at).total_seconds()
    assert report["wall_seconds"] <= container_seconds + 1
    assert report["usage_source"] == "rusage"


# --- the raw API -------------------------------------------------------------------------------------


def _pod(name: str, labels: dict[str, str], argv: list[str] | None = None) -> dict:
    container = {"name": "base", "image": "x", "command": argv or [sys.executable, "-c", "print('x')"]}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container]}}


def test_label_selectors_patch_delete_and_404s(scripted_kube_emulator: KubeEmulator) -> None:
    scripted_kube_emulator.add_script(PodScript(run_seconds=None))
    base = f"/api/v1/namespaces/{NS}/pods"
    with httpx.Client(base_url=scripted_kube_emulator.url) as client:
        assert client.post(base, json=_pod("a", {"app": "x", "tier": "1"})).status_code == 201
        assert client.post(base, json=_pod("b", {"app": "x"})).status_code == 201
        assert client.post(base, json=_pod("c", {"app": "y"})).status_code == 201

        def names(selector: str) -> list[str]:
            items = client.get(base, params={"labelSelector": selector}).json()["items"]
            return sorted(item["metadata"]["name"] for item in items)

        assert names("app=x") == ["a", "b"]
        assert names("app!=x") == ["c"]
        assert names("app=x,!tier") == ["b"]
        assert names("tier") == ["a"]
        patched = client.patch(
            f"{base}/b",
            json={"metadata": {"labels": {"already_checked": "True"}}},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert patched.json()["metadata"]["labels"] == {"app": "x", "already_checked": "True"}
        assert names("app=x,already_checked!=True") == ["a"]

        missing = client.get(f"{base}/nope")
        assert missing.status_code == 404
        assert missing.json()["reason"] == "NotFound"
        assert missing.json()["details"]["kind"] == "pods"
        unknown_ns = client.post("/api/v1/namespaces/nowhere/pods", json=_pod("d", {}))
        assert unknown_ns.status_code == 404
        assert unknown_ns.json()["message"] == 'namespaces "nowhere" not found'
        assert client.delete(f"{base}/a").status_code == 200
        assert client.delete(f"{base}/a").status_code == 404
        assert names("app=x") == ["b"]
    assert [r.method for r in scripted_kube_emulator.requests].count("POST") == 4


def test_log_stream_closes_when_the_container_ends_and_since_seconds_filters(
    scripted_kube_emulator: KubeEmulator,
) -> None:
    scripted_kube_emulator.add_script(PodScript(logs=("one", "two"), run_seconds=None))
    base = f"/api/v1/namespaces/{NS}/pods"
    with httpx.Client(base_url=scripted_kube_emulator.url, timeout=10) as client:
        client.post(base, json=_pod("logger", {}))
        for _ in range(100):
            if client.get(f"{base}/logger").json()["status"]["phase"] == "Running":
                break
            time.sleep(0.02)
        scripted_kube_emulator.finish_pod(NS, "logger", exit_code=0)
        with client.stream(
            "GET", f"{base}/logger/log", params={"follow": "true", "timestamps": "true"}
        ) as lines:
            received = list(lines.iter_lines())
        assert [line.split(" ", 1)[1] for line in received] == ["one", "two"]
        assert all(line.split(" ", 1)[0].endswith("Z") for line in received)
        plain = client.get(f"{base}/logger/log", params={"tailLines": "1"}).text
        assert plain == "two\n"
        assert client.get(f"{base}/logger/log", params={"sinceSeconds": "1"}).text == "one\ntwo\n"
        assert client.get(f"{base}/logger/log", params={"container": "other"}).status_code == 400


def test_events_list_and_watch(scripted_kube_emulator: KubeEmulator) -> None:
    base = f"/api/v1/namespaces/{NS}"
    with httpx.Client(base_url=scripted_kube_emulator.url, timeout=10) as client:
        client.post(f"{base}/pods", json=_pod("evented", {}))
        client.post(f"{base}/pods", json=_pod("other", {}))
        listed = client.get(f"{base}/events", params={"fieldSelector": "involvedObject.name=evented"}).json()
        assert listed["kind"] == "EventList"
        assert {e["involvedObject"]["name"] for e in listed["items"]} == {"evented"}
        assert listed["items"][0]["reason"] == "Scheduled"
        params = {"fieldSelector": "involvedObject.name=evented", "watch": "True", "timeoutSeconds": "1"}
        with client.stream("GET", f"{base}/events", params=params) as stream:
            watched = [json.loads(line) for line in stream.iter_lines() if line]
        assert watched
        assert all(item["type"] == "ADDED" for item in watched)
        assert {item["object"]["involvedObject"]["name"] for item in watched} == {"evented"}


# --- the command -------------------------------------------------------------------------------------


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def test_command_serves_writes_kubeconfig_and_leaves_nothing_behind_on_sigterm(tmp_path: Path) -> None:
    import yaml

    kubeconfig = tmp_path / "kube" / "config"
    marker = f"emulated-pod-{uuid.uuid4().hex}"
    command = [
        sys.executable,
        "-m",
        "airflow_sla_promotion.devtools.kube_emulator",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        "team-a",
        "--namespace",
        "team-b",
    ]
    emulator = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        banner = emulator.stdout.readline().decode()  # printed once it serves and the kubeconfig exists
        assert "serving" in banner, banner
        config = yaml.safe_load(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        with httpx.Client(base_url=server, timeout=10) as client:
            names = [ns["metadata"]["name"] for ns in client.get("/api/v1/namespaces").json()["items"]]
            assert names == ["team-a", "team-b"]
            argv = [sys.executable, "-c", "import time; time.sleep(60)", marker]
            assert (
                client.post("/api/v1/namespaces/team-a/pods", json=_pod("sleeper", {}, argv)).status_code
                == 201
            )
            for _ in range(200):
                if _processes_with(marker):
                    break
                time.sleep(0.02)
            assert _processes_with(marker)
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=20) == 0
        for _ in range(100):
            if not _processes_with(marker):
                break
            time.sleep(0.05)
        assert _processes_with(marker) == []
    finally:
        if emulator.poll() is None:
            os.killpg(emulator.pid, signal.SIGKILL)
            emulator.wait()
