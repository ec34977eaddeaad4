"""Local Kubernetes API emulator for tests and the demo: the API subset KubernetesPodOperator uses.

Never for production. No Kubernetes cluster can run on the machines this project is developed and
tested on, so the real ``KubernetesPodOperator`` code path (sync client, ``kubernetes_asyncio`` in the
trigger) runs against this emulator instead. It serves plain HTTP on 127.0.0.1:

- pods: list (label selectors ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``; field selector
  ``metadata.name``), create (with ``status`` set at once), get, strategic-merge ``PATCH`` of labels and
  annotations, ``DELETE``; the real ``404 NotFound`` ``Status`` objects for unknown pods and namespaces;
- ``pods/{name}/log`` with ``container``, ``follow``, ``timestamps``, ``sinceSeconds`` and
  ``tailLines`` (a followed stream closes when the container ends);
- events of a pod: list and ``watch=true`` (JSON lines, closed after ``timeoutSeconds``);
- namespaces: list and get.

Every request is recorded (:attr:`KubeEmulator.requests`) so tests can assert what was sent.

Pods run in one of two ways:

- **local-process** (the command's default): the pod's first container runs its ``command + args`` as
  a local subprocess (its own process group) with this process's environment plus the container's
  ``env`` (plain values), ``SLA_PROMOTION_TERMINATION_LOG`` (a file that becomes
  ``terminated.message``) and ``SLA_PROMOTION_USAGE_SOURCE=rusage`` (a local process shares the host's
  cgroup). The image is ignored. stdout and stderr become the pod log; the exit code sets the phase
  and ``terminated.exitCode``; the resident memory of the process group is polled against the
  container's memory limit and a process group over it is killed and reported ``OOMKilled`` (137);
  ``DELETE`` kills the process group.
- **scripted**: a :class:`PodScript` decides phases, log lines, exit code and reasons, including
  image-pull errors (``waiting.reason``) and pods that are never scheduled. Scripts are matched by
  labels (:meth:`KubeEmulator.add_script`); in ``scripted`` mode unmatched pods use the default script.

Not emulated: scheduling, nodes, init containers, restarts, probes, volumes, ``exec``/``attach``
websockets (so no ``do_xcom_push`` sidecar), authentication (any token is accepted), RBAC, other
resource kinds, ``resourceVersion`` semantics beyond a counter.

Built on ``aiohttp.web``: it is already installed with the provider (``kubernetes_asyncio`` depends on
it), it streams chunked responses (followed logs, watches) natively, and it runs in a background
thread for in-process use. ``kmock`` lacks label/field selectors, the ``/log`` subresource, status on
create and watches, so it would have needed as much code on top.

Command: ``python -m airflow_sla_promotion.devtools.kube_emulator --port PORT --kubeconfig PATH
[--namespace NS ...]`` (foreground; the kubeconfig is written once it serves; SIGTERM or SIGINT stop
it and every pod process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from airflow_sla_promotion.spec import DEFAULT_DRAFT_NAMESPACE, DEFAULT_TARGET_NAMESPACE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

DEFAULT_NAMESPACES = (DEFAULT_DRAFT_NAMESPACE, DEFAULT_TARGET_NAMESPACE)
Mode = Literal["local-process", "scripted"]
_POLL = 0.05  # seconds between checks of a followed log or a watch


# --- small helpers ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(moment: datetime) -> str:
    """Kubernetes object timestamps: RFC 3339 in UTC, whole seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts_nano(moment: datetime) -> str:
    """Kubernetes log timestamps: RFC 3339 with nanoseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def parse_quantity(value: str | float | int) -> float:
    """A Kubernetes quantity (``1100m``, ``2253Mi``, ``1G``, ``1e3``) as a plain number."""
    text = str(value).strip()
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    decimal = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
    for suffix, factor in binary.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    if text and text[-1] in decimal:
        return float(text[:-1]) * decimal[text[-1]]
    return float(text)


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    """A Kubernetes ``Status`` error body, as the real API server sends it."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }
    return web.json_response(body, status=code)


def _not_found(kind: str, name: str) -> web.Response:
    return _status(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1"}


@dataclass(frozen=True)
class LabelRequirement:
    """One term of an equality-based label selector."""

    key: str
    operator: Literal["=", "!=", "exists", "!exists"]
    value: str = ""

    def __call__(self, labels: dict[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "!=":
            return labels.get(self.key) != self.value
        return labels.get(self.key) == self.value


def parse_label_selector(selector: str) -> list[LabelRequirement]:
    """The terms of an equality-based label selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``)."""
    requirements: list[LabelRequirement] = []
    for raw in selector.split(","):
        term = raw.strip()
        if not term:
            continue
        if " in " in term or " notin " in term or "(" in term:
            raise ValueError(f"set-based selector not supported by the emulator: {term!r}")
        if term.startswith("!"):
            requirements.append(LabelRequirement(term[1:].strip(), "!exists"))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(LabelRequirement(key.strip(), "!=", value.strip()))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            requirements.append(LabelRequirement(key.strip(), "=", value.strip()))
        else:
            requirements.append(LabelRequirement(term, "exists"))
    return requirements


def _field(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches_fields(obj: dict[str, Any], selector: str | None) -> bool:
    for raw in (selector or "").split(","):
        term = raw.strip()
        if not term:
            continue
        negate = "!=" in term
        key, value = term.split("!=" if negate else "=", 1)
        actual = _field(obj, key.strip().lstrip("="))
        actual_text = "" if actual is None else str(actual)
        if (actual_text == value.strip().lstrip("=")) == negate:
            return False
    return True


def _group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in a process group (Linux ``/proc``)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            continue
    return total


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- models -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None

    @property
    def namespace(self) -> str | None:
        parts = self.path.strip("/").split("/")
        return parts[3] if len(parts) > 3 and parts[2] == "namespaces" else None


@dataclass(frozen=True)
class PodScript:
    """What a scripted pod does.

    :param schedule: False leaves the pod ``Pending`` and unschedulable for ever.
    :param waiting_reason: the container never starts and waits with this reason (``ErrImagePull``,
        ``ImagePullBackOff``, ``InvalidImageName``, ...).
    :param waiting_message: the message of that waiting state.
    :param pending_seconds: time spent ``Pending`` before the container starts.
    :param logs: lines the container prints, spread over ``run_seconds``.
    :param run_seconds: how long the container runs; None runs it until :meth:`KubeEmulator.finish_pod`.
    :param exit_code: the container's exit code.
    :param reason: ``terminated.reason``; default ``Completed`` for 0, else ``Error``.
    :param termination_message: ``terminated.message`` (e.g. a job report's JSON).
    """

    schedule: bool = True
    waiting_reason: str | None = None
    waiting_message: str = ""
    pending_seconds: float = 0.0
    logs: Sequence[str] = ()
    run_seconds: float | None = 0.2
    exit_code: int = 0
    reason: str | None = None
    termination_message: str | None = None


@dataclass
class _Pod:
    manifest: dict[str, Any]
    namespace: str
    name: str
    uid: str
    created: datetime
    resource_version: int
    phase: str = "Pending"
    scheduled: bool = True
    unschedulable_message: str = ""
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    started_at: datetime | None = None
    logs: list[tuple[datetime, str]] = field(default_factory=list)
    deleted: bool = False
    pgid: int | None = None
    finish: asyncio.Future[tuple[int, str | None, str | None]] | None = None
    task: asyncio.Task[None] | None = None

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.manifest.setdefault("metadata", {}).setdefault("labels", {}) or {}
        return labels

    @property
    def containers(self) -> list[dict[str, Any]]:
        containers: list[dict[str, Any]] = self.manifest.get("spec", {}).get("containers") or []
        return containers

    @property
    def terminated(self) -> bool:
        return "terminated" in self.state

    def to_json(self) -> dict[str, Any]:
        metadata = {
            **self.manifest.get("metadata", {}),
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": str(self.resource_version),
            "creationTimestamp": _ts(self.created),
        }
        spec = dict(self.manifest.get("spec", {}))
        status: dict[str, Any] = {"phase": self.phase, "qosClass": "Burstable"}
        if not self.scheduled:
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": self.unschedulable_message,
                    "lastTransitionTime": _ts(self.created),
                }
            ]
        else:
            spec["nodeName"] = "emulator"
            running = "running" in self.state
            status.update(
                hostIP="127.0.0.1",
                podIP="127.0.0.1",
                startTime=_ts(self.created),
                conditions=[
                    {
                        "type": kind,
                        "status": "True" if ok else "False",
                        "lastTransitionTime": _ts(self.created),
                    }
                    for kind, ok in (
                        ("PodScheduled", True),
                        ("Initialized", True),
                        ("ContainersReady", running),
                        ("Ready", running),
                    )
                ],
                containerStatuses=[
                    {
                        "name": container.get("name", "base"),
                        "image": container.get("image", ""),
                        "imageID": ""
                        if self.started_at is None
                        else f"emulator://{container.get('image', '')}",
                        "containerID": "" if self.started_at is None else f"emulator://{self.uid}",
                        "ready": running,
                        "started": running,
                        "restartCount": 0,
                        "state": self.state,
                        "lastState": {},
                    }
                    for container in self.containers
                ],
            )
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


# --- the API server -----------------------------------------------------------------------------------


class _Cluster:
    """State and HTTP handlers; every method runs on the emulator's event loop."""

    def __init__(self, namespaces: Sequence[str], mode: Mode, work_dir: Path, memory_poll_interval: float):
        self.namespaces = {ns: _now() for ns in namespaces}
        self.mode = mode
        self.work_dir = work_dir
        self.memory_poll_interval = memory_poll_interval
        self.pods: dict[tuple[str, str], _Pod] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.scripts: list[tuple[dict[str, str], PodScript]] = []
        self.default_script = PodScript()
        self.version = 1
        self.lock = threading.Lock()  # guards `requests`, read from other threads

    def bump(self) -> int:
        self.version += 1
        return self.version

    # ---- app ----
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record], client_max_size=16 * 2**20)
        base = "/api/v1/namespaces/{ns}"
        app.router.add_get("/api/v1/namespaces", self.list_namespaces)
        app.router.add_get(base, self.get_namespace)
        app.router.add_get("/api/v1/pods", self.list_pods)
        app.router.add_get(base + "/pods", self.list_pods)
        app.router.add_post(base + "/pods", self.create_pod)
        app.router.add_get(base + "/pods/{name}", self.get_pod)
        app.router.add_patch(base + "/pods/{name}", self.patch_pod)
        app.router.add_delete(base + "/pods/{name}", self.delete_pod)
        app.router.add_get(base + "/pods/{name}/log", self.pod_log)
        app.router.add_get(base + "/events", self.list_events)
        app.router.add_route("*", "/{tail:.*}", self.unknown)
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        with self.lock:
            self.requests.append(RecordedRequest(request.method, request.path, dict(request.query), body))
        response: web.StreamResponse = await handler(request)
        return response

    async def unknown(self, request: web.Request) -> web.Response:
        return _status(404, "NotFound", f"the server could not find the requested resource ({request.path})")

    # ---- namespaces ----
    def _namespace_json(self, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "uid": name, "creationTimestamp": _ts(self.namespaces[name])},
            "status": {"phase": "Active"},
        }

    async def list_namespaces(self, request: web.Request) -> web.Response:
        items = [self._namespace_json(name) for name in self.namespaces]
        return web.json_response(
            {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": items}
        )

    async def get_namespace(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        if ns not in self.namespaces:
            return _not_found("namespaces", ns)
        return web.json_response(self._namespace_json(ns))

    # ---- pods ----
    def _pod_or_none(self, request: web.Request) -> _Pod | None:
        return self.pods.get((request.match_info["ns"], request.match_info["name"]))

    async def list_pods(self, request: web.Request) -> web.Response:
        ns = request.match_info.get("ns")
        try:
            predicates = parse_label_selector(request.query.get("labelSelector", ""))
        except ValueError as error:
            return _status(400, "BadRequest", str(error))
        items = [
            pod.to_json()
            for pod in self.pods.values()
            if (ns is None or pod.namespace == ns) and all(predicate(pod.labels) for predicate in predicates)
        ]
        items = [item for item in items if _matches_fields(item, request.query.get("fieldSelector"))]
        return web.json_response(
            {
                "apiVersion": "v1",
                "kind": "PodList",
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }
        )

    async def create_pod(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        if ns not in self.namespaces:
            return _not_found("namespaces", ns)
        manifest = await request.json()
        metadata = manifest.setdefault("metadata", {})
        name = metadata.get("name") or f"{metadata.get('generateName', 'pod-')}{uuid.uuid4().hex[:5]}"
        if (ns, name) in self.pods:
            return _status(
                409, "AlreadyExists", f'pods "{name}" already exists', {"name": name, "kind": "pods"}
            )
        if not manifest.get("spec", {}).get("containers"):
            return _status(422, "Invalid", f'Pod "{name}" is invalid: spec.containers: Required value')
        metadata.pop("namespace", None)
        pod = _Pod(manifest, ns, name, str(uuid.uuid4()), _now(), self.bump())
        self.pods[(ns, name)] = pod
        self._event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to emulator")
        pod.task = asyncio.get_running_loop().create_task(self._run(pod))
        return web.json_response(pod.to_json(), status=201)

    async def get_pod(self, request: web.Request) -> web.Response:
        pod = self._pod_or_none(request)
        if pod is None:
            return _not_found("pods", request.match_info["name"])
        return web.json_response(pod.to_json())

    async def patch_pod(self, request: web.Request) -> web.Response:
        pod = self._pod_or_none(request)
        if pod is None:
            return _not_found("pods", request.match_info["name"])
        patch = await request.json()
        if not isinstance(patch, dict):
            return _status(415, "UnsupportedMediaType", "the emulator supports merge patches only")
        for key in ("labels", "annotations"):
            changes = (patch.get("metadata") or {}).get(key)
            if changes:
                target = pod.manifest.setdefault("metadata", {}).setdefault(key, {})
                for item, value in changes.items():
                    if value is None:
                        target.pop(item, None)
                    else:
                        target[item] = str(value)
        pod.resource_version = self.bump()
        return web.json_response(pod.to_json())

    async def delete_pod(self, request: web.Request) -> web.Response:
        pod = self._pod_or_none(request)
        if pod is None:
            return _not_found("pods", request.match_info["name"])
        await self.remove(pod)
        body = pod.to_json()
        body["metadata"]["deletionTimestamp"] = _ts(_now())
        return web.json_response(body)

    async def remove(self, pod: _Pod) -> None:
        """Delete a pod: end its process group and forget it."""
        pod.deleted = True
        self.pods.pop((pod.namespace, pod.name), None)
        if pod.task is None or pod.task.done():
            return
        if pod.pgid is not None:
            # Like the kubelet: SIGTERM, a grace period (short here), then SIGKILL.
            _kill_group(pod.pgid, signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(pod.task), 1.0)
            _kill_group(pod.pgid, signal.SIGKILL)
        if not pod.task.done():
            pod.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pod.task

    async def pod_log(self, request: web.Request) -> web.StreamResponse:
        pod = self._pod_or_none(request)
        if pod is None:
            return _not_found("pods", request.match_info["name"])
        names = [container.get("name") for container in pod.containers]
        container = request.query.get("container") or names[0]
        if container not in names:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {pod.name}")
        if pod.started_at is None:
            reason = pod.state.get("waiting", {}).get("reason", "ContainerCreating")
            return _status(
                400,
                "BadRequest",
                f'container "{container}" in pod "{pod.name}" is waiting to start: {reason}',
            )
        timestamps = _truthy(request.query.get("timestamps"))
        since = request.query.get("sinceSeconds")
        cutoff = _now() - timedelta(seconds=int(since)) if since else None
        tail = request.query.get("tailLines")

        def render(lines: list[tuple[datetime, str]]) -> bytes:
            return b"".join(
                ((f"{_ts_nano(moment)} {line}" if timestamps else line) + "\n").encode()
                for moment, line in lines
                if cutoff is None or moment >= cutoff
            )

        lines = list(pod.logs)
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        if not _truthy(request.query.get("follow")):
            return web.Response(body=render(lines), content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(render(lines))
        sent = len(pod.logs)
        while True:
            done = pod.terminated or pod.deleted
            if len(pod.logs) > sent:
                await response.write(render(pod.logs[sent:]))
                sent = len(pod.logs)
            if done:
                break
            await asyncio.sleep(_POLL)
        await response.write_eof()
        return response

    # ---- events ----
    def _event(self, pod: _Pod, kind: str, reason: str, message: str) -> None:
        moment = _now()
        version = self.bump()
        self.events.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{pod.name}.{version:x}",
                    "namespace": pod.namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(version),
                    "creationTimestamp": _ts(moment),
                },
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "uid": pod.uid,
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "count": 1,
                "firstTimestamp": _ts(moment),
                "lastTimestamp": _ts(moment),
                "source": {"component": "kube-emulator"},
                "reportingComponent": "kube-emulator",
            }
        )

    async def list_events(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["ns"]
        selector = request.query.get("fieldSelector")

        def selected(after: int) -> list[dict[str, Any]]:
            return [
                event
                for event in self.events
                if event["metadata"]["namespace"] == ns
                and int(event["metadata"]["resourceVersion"]) > after
                and _matches_fields(event, selector)
            ]

        if not _truthy(request.query.get("watch")):
            items = selected(0)
            return web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "EventList",
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": items,
                }
            )
        after = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 60)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in selected(after):
                await response.write((json.dumps({"type": "ADDED", "object": event}) + "\n").encode())
                after = int(event["metadata"]["resourceVersion"])
            if loop.time() >= deadline:
                break
            await asyncio.sleep(min(_POLL * 4, max(deadline - loop.time(), 0)))
        await response.write_eof()
        return response

    # ---- pod lifecycle ----
    def script_for(self, pod: _Pod) -> PodScript | None:
        for labels, script in self.scripts:
            if all(pod.labels.get(key) == value for key, value in labels.items()):
                return script
        return self.default_script if self.mode == "scripted" else None

    def _set(self, pod: _Pod, *, phase: str | None = None, state: dict[str, Any] | None = None) -> None:
        if phase is not None:
            pod.phase = phase
        if state is not None:
            pod.state = state
        pod.resource_version = self.bump()

    def _start(self, pod: _Pod) -> None:
        pod.started_at = _now()
        self._set(pod, phase="Running", state={"running": {"startedAt": _ts(pod.started_at)}})
        self._event(pod, "Normal", "Started", "Started container")

    def _terminate(self, pod: _Pod, exit_code: int, reason: str | None, message: str | None) -> None:
        finished = _now()
        started = pod.started_at or finished
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": _ts(started),
            "finishedAt": _ts(finished),
            "containerID": f"emulator://{pod.uid}",
        }
        policy = (pod.containers[0] if pod.containers else {}).get("terminationMessagePolicy")
        if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
            message = "\n".join(line for _, line in pod.logs[-80:])[-2048:]
        if message:
            terminated["message"] = message[:4096]
        self._set(pod, phase="Succeeded" if exit_code == 0 else "Failed", state={"terminated": terminated})

    async def _run(self, pod: _Pod) -> None:
        script = self.script_for(pod)
        if script is None:
            await self._run_local(pod)
        else:
            await self._run_script(pod, script)

    async def _run_script(self, pod: _Pod, script: PodScript) -> None:
        if not script.schedule:
            pod.scheduled = False
            pod.unschedulable_message = "0/1 nodes are available: 1 Insufficient cpu."
            self._set(pod)
            self._event(pod, "Warning", "FailedScheduling", pod.unschedulable_message)
            return
        await asyncio.sleep(script.pending_seconds)
        if script.waiting_reason:
            waiting = script.waiting_message or f"{script.waiting_reason}: image cannot be pulled"
            self._set(pod, state={"waiting": {"reason": script.waiting_reason, "message": waiting}})
            self._event(pod, "Warning", "Failed", waiting)
            return
        self._start(pod)
        pod.finish = asyncio.get_running_loop().create_future()
        outcome: tuple[int, str | None, str | None]
        if script.run_seconds is None:
            for line in script.logs:
                pod.logs.append((_now(), line))
            outcome = await pod.finish
        else:
            step = script.run_seconds / (len(script.logs) + 1)
            for line in script.logs:
                await asyncio.sleep(step)
                pod.logs.append((_now(), line))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pod.finish), step)
            outcome = (
                pod.finish.result()
                if pod.finish.done()
                else (script.exit_code, script.reason, script.termination_message)
            )
        exit_code, reason, message = outcome
        if reason == "OOMKilled":
            self._event(pod, "Warning", "OOMKilling", "Memory cgroup out of memory")
        self._terminate(pod, exit_code, reason, message)

    async def _run_local(self, pod: _Pod) -> None:
        container = pod.containers[0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            pod.started_at = _now()
            self._terminate(
                pod,
                128,
                "ContainerCannotRun",
                "local-process mode needs the container's command (image ignored)",
            )
            return
        pod_dir = Path(tempfile.mkdtemp(prefix=f"{pod.name}-", dir=self.work_dir))
        termination_log = pod_dir / "termination-log"
        env = dict(os.environ)
        env.update(
            {
                item["name"]: str(item.get("value", ""))
                for item in container.get("env") or []
                if "valueFrom" not in item
            }
        )
        env["SLA_PROMOTION_TERMINATION_LOG"] = str(termination_log)
        env["SLA_PROMOTION_USAGE_SOURCE"] = "rusage"
        limit_text = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        memory_limit = parse_quantity(limit_text) if limit_text else None
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=pod_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                limit=2**20,
            )
        except OSError as error:
            pod.started_at = _now()
            self._terminate(pod, 128, "StartError", f"failed to start {argv[0]!r}: {error}")
            return
        pod.pgid = process.pid
        self._start(pod)
        oom = False

        async def read_output() -> None:
            assert process.stdout is not None
            while line := await process.stdout.readline():
                pod.logs.append((_now(), line.decode(errors="replace").rstrip("\n")))

        async def watch_memory() -> None:
            nonlocal oom
            while memory_limit is not None and process.returncode is None:
                if _group_rss_bytes(process.pid) > memory_limit:
                    oom = True
                    _kill_group(process.pid, signal.SIGKILL)
                    return
                await asyncio.sleep(self.memory_poll_interval)

        reader = asyncio.create_task(read_output())
        watcher = asyncio.create_task(watch_memory())
        try:
            returncode = await process.wait()
            await reader
        finally:
            watcher.cancel()
            # The container is gone, so is anything it left running in its process group.
            _kill_group(process.pid, signal.SIGKILL)
        exit_code = 128 - returncode if returncode < 0 else returncode
        reason = None
        if oom:
            exit_code, reason = 137, "OOMKilled"
            self._event(pod, "Warning", "OOMKilling", f"Memory limit {limit_text} exceeded")
        message = None
        with contextlib.suppress(OSError):
            message = termination_log.read_bytes()[:4096].decode(errors="replace") or None
        if not pod.deleted:
            self._terminate(pod, exit_code, reason, message)

    async def shutdown(self) -> None:
        for pod in list(self.pods.values()):
            await self.remove(pod)


# --- in-process use -------------------------------------------------------------------------------------


class KubeEmulator:
    """The emulator on a background thread, for tests: ``with KubeEmulator() as kube: ...``.

    :param namespaces: namespaces that exist (others give 404 on create).
    :param mode: ``local-process`` runs pods as local processes, ``scripted`` runs every pod with
        ``default_script``; scripts added with :meth:`add_script` win in both modes.
    :param host: address to bind (loopback only).
    :param port: port to bind; 0 picks a free one.
    :param default_script: the script of unmatched pods in scripted mode.
    :param memory_poll_interval: seconds between memory checks of local processes.
    """

    def __init__(
        self,
        *,
        namespaces: Sequence[str] = DEFAULT_NAMESPACES,
        mode: Mode = "local-process",
        host: str = "127.0.0.1",
        port: int = 0,
        default_script: PodScript | None = None,
        memory_poll_interval: float = 0.05,
    ) -> None:
        self._work_dir = tempfile.TemporaryDirectory(prefix="kube-emulator-")
        self._cluster = _Cluster(namespaces, mode, Path(self._work_dir.name), memory_poll_interval)
        if default_script is not None:
            self._cluster.default_script = default_script
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ---- lifecycle ----
    def start(self) -> KubeEmulator:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._runner, self._port = loop.run_until_complete(
                    _serve(self._cluster, self._host, self._port)
                )
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._cluster.shutdown())
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="kube-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and end every pod's process."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop = None
        self._work_dir.cleanup()

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- access ----
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str | None = None) -> Path:
        return write_kubeconfig(Path(path), self.url, namespace or next(iter(self._cluster.namespaces)))

    def _call(self, fn: Callable[[], Any]) -> Any:
        if self._loop is None:
            return fn()

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                return await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._cluster.lock:
            return list(self._cluster.requests)

    def find_requests(
        self, method: str | None = None, *, path_endswith: str | None = None, path_contains: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests filtered by method and path."""
        return [
            request
            for request in self.requests
            if (method is None or request.method == method.upper())
            and (path_endswith is None or request.path.endswith(path_endswith))
            and (path_contains is None or path_contains in request.path)
        ]

    def clear_requests(self) -> None:
        with self._cluster.lock:
            self._cluster.requests.clear()

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The pods that exist now, as the API serves them."""
        return self._call(  # type: ignore[no-any-return]
            lambda: [
                pod.to_json()
                for pod in self._cluster.pods.values()
                if namespace is None or pod.namespace == namespace
            ]
        )

    def pod_log(self, namespace: str, name: str) -> list[str]:
        """A pod's log lines (without timestamps)."""
        pod = self._cluster.pods.get((namespace, name))
        return [] if pod is None else [line for _, line in list(pod.logs)]

    def events(self) -> list[dict[str, Any]]:
        return self._call(lambda: list(self._cluster.events))  # type: ignore[no-any-return]

    # ---- scripted control ----
    def add_script(self, script: PodScript, *, labels: dict[str, str] | None = None) -> None:
        """Run pods whose labels include ``labels`` (all pods when None) with ``script``; first match wins."""
        self._call(lambda: self._cluster.scripts.append((dict(labels or {}), script)))

    def clear_scripts(self) -> None:
        self._call(self._cluster.scripts.clear)

    def finish_pod(
        self,
        namespace: str,
        name: str,
        *,
        exit_code: int = 0,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """End a running scripted pod now (e.g. one with ``run_seconds=None``)."""

        def finish() -> None:
            pod = self._cluster.pods[(namespace, name)]
            if pod.finish is None or pod.finish.done():
                raise RuntimeError(f"pod {namespace}/{name} is not running a script")
            pod.finish.set_result((exit_code, reason, message))

        self._call(finish)


async def _serve(cluster: _Cluster, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(cluster.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # The bound port (port 0 asks the OS for a free one).
    sockets: Any = getattr(site._server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1])


def write_kubeconfig(path: Path, server: str, namespace: str) -> Path:
    """Write a kubeconfig pointing at ``server`` atomically (readers never see half a file)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-emulator", "cluster": {"server": server}}],
        "users": [{"name": "kube-emulator", "user": {"token": "kube-emulator"}}],
        "contexts": [
            {
                "name": "kube-emulator",
                "context": {"cluster": "kube-emulator", "user": "kube-emulator", "namespace": namespace},
            }
        ],
        "current-context": "kube-emulator",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(config, indent=2))  # JSON is YAML: any kubeconfig reader takes it
    partial.replace(path)
    return path


@contextlib.contextmanager
def running_emulator(**kwargs: Any) -> Iterator[KubeEmulator]:
    """``KubeEmulator(**kwargs)`` started for the duration of a ``with`` block."""
    with KubeEmulator(**kwargs) as emulator:
        yield emulator


# --- command --------------------------------------------------------------------------------------------


async def _main(args: argparse.Namespace) -> None:
    work_dir = tempfile.TemporaryDirectory(prefix="kube-emulator-")
    cluster = _Cluster(args.namespace or DEFAULT_NAMESPACES, args.mode, Path(work_dir.name), 0.1)
    runner, port = await _serve(cluster, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = f"http://{args.host}:{port}"
    write_kubeconfig(Path(args.kubeconfig), url, next(iter(cluster.namespaces)))
    print(f"kube emulator serving {url} ({args.mode}); kubeconfig: {args.kubeconfig}", flush=True)
    try:
        await stop.wait()
    finally:
        await cluster.shutdown()
        await runner.cleanup()
        work_dir.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_sla_promotion.devtools.kube_emulator",
        description="Local Kubernetes API emulator for tests and the demo (never production).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to serve on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig once serving")
    parser.add_argument(
        "--namespace",
        action="append",
        help=f"a namespace that exists (repeatable; default {DEFAULT_NAMESPACES})",
    )
    parser.add_argument("--mode", choices=("local-process", "scripted"), default="local-process")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
