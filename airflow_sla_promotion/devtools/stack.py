"""A local Airflow stack for the demo and the end-to-end test: Kubernetes emulator, airflow standalone, REST."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from airflow_sla_promotion.spec import DEFAULT_DRAFT_NAMESPACE, DEFAULT_TARGET_NAMESPACE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

#: Every process the stack starts (and all their descendants) carries this variable with the stack's id,
#: so that stopping the stack finds processes that left its process groups (Airflow's task processes do).
MARKER_VARIABLE = "SLA_PROMOTION_STACK_ID"
USERNAME = "admin"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class StackError(RuntimeError):
    """A step of the stack failed or timed out; the message names the step and shows the relevant log."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port`` and it can be bound."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return False
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel considers free right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return ""


def wait_until(
    step: str,
    probe: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 1.0,
    logs: Iterable[Path] = (),
    alive: Callable[[], str | None] | None = None,
) -> Any:
    """Call ``probe`` until it returns something truthy; raise ``StackError`` naming ``step`` on timeout.

    ``alive`` returns a reason when a process the step depends on has died, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except (httpx.HTTPError, OSError, ValueError) as error:
            result, last_error = None, error
        if result:
            return result
        dead = alive() if alive else None
        if dead or time.monotonic() >= deadline:
            reason = dead or f"timed out after {timeout:.0f} s"
            if last_error is not None:
                reason += f" (last error: {last_error})"
            raise StackError(_with_logs(f"step '{step}' failed: {reason}", logs))
        time.sleep(interval)


def _with_logs(message: str, logs: Iterable[Path]) -> str:
    parts = [message]
    for path in logs:
        tail = log_tail(path)
        if tail:
            parts.append(f"--- last lines of {path} ---\n{tail.rstrip()}")
    return "\n".join(parts)


@dataclass
class StackSettings:
    """What the stack runs on.

    :param home: AIRFLOW_HOME; also holds the stack's own logs and the emulator's kubeconfig.
    :param dags_folder: the DAGs folder (the DAG factory file lives there).
    :param jobs_folder: ``[sla_promotion] jobs_folder``.
    :param api_port: port of the api-server on 127.0.0.1; must be free.
    :param database_url: SQLAlchemy URL of the metadata DB; SQLite in ``home`` when None.
    :param python_paths: prepended to PYTHONPATH of every process (the example jobs' code).
    :param namespaces: the emulator's namespaces.
    :param extra_env: more environment for every process (``AIRFLOW__...`` options).
    :param startup_timeout: seconds for the emulator and for airflow standalone to come up.
    """

    home: Path
    dags_folder: Path
    jobs_folder: Path
    api_port: int = 8080
    database_url: str | None = None
    python_paths: tuple[Path, ...] = ()
    namespaces: tuple[str, ...] = (DEFAULT_DRAFT_NAMESPACE, DEFAULT_TARGET_NAMESPACE)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 180.0


class AirflowStack:
    """The Kubernetes API emulator and ``airflow standalone``, each in its own process group.

    Use as a context manager, or call ``start()`` and (always) ``stop()``.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.stack_id = uuid.uuid4().hex
        self.password = secrets.token_urlsafe(12)
        self.home = settings.home
        self.kubeconfig = self.home / "kubeconfig.yaml"
        self.standalone_log = self.home / "standalone.log"
        self.emulator_log = self.home / "kube-emulator.log"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._client: RestClient | None = None
        # Fixed for the stack's life: every component must share the secrets.
        self._secret_key = secrets.token_hex(16)
        self._jwt_secret = secrets.token_hex(32)
        self._log_ports = (free_port(), free_port())

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def client(self) -> RestClient:
        if self._client is None:
            self._client = RestClient(self.api_url, USERNAME, self.password)
        return self._client

    @property
    def logs(self) -> tuple[Path, Path]:
        return (self.standalone_log, self.emulator_log)

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- start ------------------------------------------------------------------------------------

    def start(self) -> None:
        if not port_is_free(self.settings.api_port):
            raise StackError(
                f"step 'check api-server port' failed: port {self.settings.api_port} on 127.0.0.1 is busy; "
                "stop what listens there or choose another port"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        self._start_emulator()
        self._write_password_file()
        self._start_standalone()
        self._wait_healthy()

    def environment(self) -> dict[str, str]:
        """The environment of every process of the stack (secrets included: never log it)."""
        settings = self.settings
        # A caller's Airflow settings (e.g. a test session's isolated home) must not leak into the stack.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
            and key not in {"AIRFLOW_HOME", "KUBECONFIG", "PYTHONPATH"}
        }
        database_url = settings.database_url or f"sqlite:///{settings.home / 'airflow.db'}"
        connection = {
            "conn_type": "airflow_api",
            "host": self.api_url,
            "login": USERNAME,
            "password": self.password,
        }
        kubernetes = {
            "conn_type": "kubernetes",
            "extra": {"kube_config_path": str(self.kubeconfig), "namespace": settings.namespaces[0]},
        }
        python_paths = [str(path) for path in settings.python_paths]
        if os.environ.get("PYTHONPATH"):
            python_paths.append(os.environ["PYTHONPATH"])
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            {
                MARKER_VARIABLE: self.stack_id,
                "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
                "PYTHONPATH": os.pathsep.join(python_paths),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(settings.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._password_file),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(settings.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": self._secret_key,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._log_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._log_ports[1]),
                # The DAG processor must see rewritten job files quickly.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__SLA_PROMOTION__JOBS_FOLDER": str(settings.jobs_folder),
                "AIRFLOW_CONN_AIRFLOW_API_DEFAULT": json.dumps(connection),
                "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(kubernetes),
            }
        )
        env.update(settings.extra_env)
        return env

    @property
    def _password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def _write_password_file(self) -> None:
        # The simple auth manager keeps a password already in this file, so the connection can hold it
        # before the api-server starts.
        self._password_file.write_text(json.dumps({USERNAME: self.password}) + "\n", encoding="utf-8")
        self._password_file.chmod(0o600)

    def _spawn(self, name: str, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.home,
                start_new_session=True,
            )
        self._processes[name] = process
        return process

    def _dead(self, name: str) -> str | None:
        process = self._processes.get(name)
        if process is not None and process.poll() is not None:
            return f"{name} exited with code {process.returncode}"
        return None

    def _start_emulator(self) -> None:
        command = [sys.executable, "-m", "airflow_sla_promotion.devtools.kube_emulator", "--port", "0"]
        command += ["--kubeconfig", str(self.kubeconfig)]
        for namespace in self.settings.namespaces:
            command += ["--namespace", namespace]
        self._spawn("kube-emulator", command, self.emulator_log)
        wait_until(
            "start the Kubernetes emulator",
            self.kubeconfig.exists,
            timeout=min(60.0, self.settings.startup_timeout),
            interval=0.2,
            logs=[self.emulator_log],
            alive=lambda: self._dead("kube-emulator"),
        )

    def _start_standalone(self) -> None:
        airflow = str(Path(sys.executable).parent / "airflow")
        self._spawn("airflow-standalone", [airflow, "standalone"], self.standalone_log)

    def _wait_healthy(self) -> None:
        def healthy() -> bool:
            response = httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
            if response.status_code != 200:
                return False
            health = response.json()
            components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(name) or {}).get("status") == "healthy" for name in components)

        wait_until(
            "start airflow standalone (api-server, scheduler, dag-processor, triggerer)",
            healthy,
            timeout=self.settings.startup_timeout,
            logs=[self.standalone_log],
            alive=lambda: self._dead("airflow-standalone") or self._dead("kube-emulator"),
        )

    # --- stop -------------------------------------------------------------------------------------

    def stop(self, grace: float = 20.0) -> None:
        """Stop everything the stack started, descendants included; idempotent."""
        if self._client is not None:
            self._client.close()
            self._client = None
        # Airflow first: its task processes may still talk to the emulator while shutting down.
        for name in ("airflow-standalone", "kube-emulator"):
            process = self._processes.get(name)
            if process is None:
                continue
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Members of the group that outlived their leader.
            _signal_group(process.pid, signal.SIGKILL)
        self._processes.clear()
        _end_marked_processes(self.stack_id, grace=5.0)

    def leftover_processes(self) -> list[int]:
        """PIDs of processes still carrying this stack's marker (none after ``stop()``)."""
        return marked_processes(self.stack_id)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def marked_processes(stack_id: str) -> list[int]:
    """PIDs of live processes whose environment carries ``MARKER_VARIABLE=stack_id`` (Linux /proc)."""
    needle = f"{MARKER_VARIABLE}={stack_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _end_marked_processes(stack_id: str, grace: float) -> None:
    pids = marked_processes(stack_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = marked_processes(stack_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class RestClient:
    """A small Airflow REST API v2 client (bearer token from ``/auth/token``, renewed on 401)."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def _authenticate(self) -> str:
        response = self._http.post("/auth/token", json=self._credentials)
        response.raise_for_status()
        self._token = str(response.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; raises ``httpx.HTTPStatusError`` for an error status (404 included)."""
        headers = dict(kwargs.pop("headers", None) or {})
        for attempt in range(2):
            headers["Authorization"] = f"Bearer {self._token or self._authenticate()}"
            response = self._http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            break
        response.raise_for_status()
        return response

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's REST record, or None while the DAG processor has not parsed it."""
        try:
            return dict(self.request("GET", f"/api/v2/dags/{dag_id}").json())
        except httpx.HTTPStatusError as error:
            if error.response.status_code == 404:
                return None
            raise

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v2/importErrors").json()["import_errors"])

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, *, conf: dict[str, Any] | None = None, note: str | None = None) -> str:
        """Trigger a run with no logical date (runs never collide); return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if note:
            body["note"] = note
        response = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        return str(response.json()["dag_run_id"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, newest first (at most 100)."""
        response = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 100}
        )
        return list(response.json()["dag_runs"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json())

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return list(response.json()["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The XCom value as stored (deserialized JSON)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.request("GET", path, params={"deserialize": "true"}).json()["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as text, read through the REST logs endpoint."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        response = self.request(
            "GET", path, params={"full_content": "true"}, headers={"Accept": "application/json"}
        )
        return render_log(response.json().get("content", []))

    def wait_for_dags(
        self, dag_ids: Iterable[str], *, timeout: float, logs: Iterable[Path] = ()
    ) -> dict[str, dict[str, Any]]:
        """Wait until the DAG processor has parsed every DAG id; return their REST records."""
        wanted = list(dag_ids)
        found: dict[str, dict[str, Any]] = {}

        def all_found() -> bool:
            for dag_id in wanted:
                if dag_id not in found and (record := self.get_dag(dag_id)) is not None:
                    found[dag_id] = record
            return len(found) == len(wanted)

        try:
            wait_until(f"parse DAGs {', '.join(wanted)}", all_found, timeout=timeout, interval=2.0)
        except StackError as error:
            missing = [dag_id for dag_id in wanted if dag_id not in found]
            message = f"{error} (missing: {missing}; import errors: {self.describe_import_errors()})"
            raise StackError(_with_logs(message, logs)) from None
        return found

    def describe_import_errors(self) -> str:
        """The DAG import errors in a few words each ('none' when there are none)."""
        try:
            errors = self.import_errors()
        except httpx.HTTPError as error:
            return f"unreadable ({error})"
        return (
            "; ".join(f"{e.get('filename')}: {str(e.get('stack_trace', ''))[-300:]}" for e in errors)
            or "none"
        )

    def wait_for_runs(
        self, dag_id: str, run_ids: Iterable[str], *, timeout: float, logs: Iterable[Path] = ()
    ) -> dict[str, str]:
        """Wait until every run ended (success or failed); return ``{run_id: state}``."""
        pending = list(run_ids)
        states: dict[str, str] = {}

        def all_done() -> bool:
            for run_id in pending:
                if run_id not in states:
                    state = self.dag_run(dag_id, run_id)["state"]
                    if state in TERMINAL_RUN_STATES:
                        states[run_id] = state
            return len(states) == len(pending)

        wait_until(
            f"wait for {len(pending)} run(s) of {dag_id}", all_done, timeout=timeout, interval=2.0, logs=logs
        )
        return states


def render_log(content: Iterable[Any]) -> str:
    """Structured log entries from the logs endpoint as plain text lines."""
    lines = []
    for entry in content:
        if isinstance(entry, dict):
            text = str(entry.get("event", ""))
            level = entry.get("level")
            lines.append(f"[{level}] {text}" if level else text)
        else:
            lines.append(str(entry))
    return "\n".join(lines)


# --- the draft -> promotion flow, shared by the demo and the end-to-end test -------------------------


def draft_dag_id(job_id: str) -> str:
    return f"{job_id}__draft"


def promotion_dag_id(job_id: str) -> str:
    return f"{job_id}__promotion"


@dataclass
class JobOutcome:
    """What the flow produced for one job."""

    job_id: str
    draft_runs: dict[str, str] = field(default_factory=dict)
    promotion_run_id: str | None = None
    promotion_state: str | None = None
    report: dict[str, Any] | None = None

    @property
    def status(self) -> str | None:
        """``promoted``, ``rejected`` or ``extended`` from the report; None without a report."""
        if not self.report:
            return None
        return (self.report.get("outcome") or {}).get("status")


def run_promotion_flow(
    stack: AirflowStack,
    job_ids: Iterable[str],
    *,
    draft_runs: int = 3,
    parse_timeout: float = 120.0,
    runs_timeout: float = 300.0,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, JobOutcome]:
    """Through REST: unpause and trigger ``draft_runs`` draft runs per job, wait, then run each promotion.

    Draft runs are triggered without a logical date, so they never collide. The promotion DAG's
    ``promote`` return value (the promotion report) is read back from XCom.
    """
    client = stack.client
    jobs = list(job_ids)
    outcomes = {job_id: JobOutcome(job_id) for job_id in jobs}
    dag_ids = [dag_id for job_id in jobs for dag_id in (draft_dag_id(job_id), promotion_dag_id(job_id))]
    progress(f"waiting for the DAG processor to parse {len(dag_ids)} DAGs")
    invalid: list[str] = []

    def parsed() -> bool:
        # A job file the factory cannot load becomes a placeholder DAG: waiting longer will not help.
        for job_id in jobs:
            if (placeholder := client.get_dag(f"{job_id}__invalid")) is not None:
                invalid.append(f"{job_id}: {placeholder.get('description')}")
        return bool(invalid) or all(client.get_dag(dag_id) is not None for dag_id in dag_ids)

    try:
        wait_until(
            "parse the draft and promotion DAGs", parsed, timeout=parse_timeout, interval=2.0, logs=stack.logs
        )
    except StackError as error:
        raise StackError(f"{error}\nDAG import errors: {client.describe_import_errors()}") from None
    if invalid:
        raise StackError(
            "step 'parse the draft and promotion DAGs' failed: invalid job files:\n" + "\n".join(invalid)
        )
    for job_id in jobs:
        client.set_paused(draft_dag_id(job_id), False)
        for _ in range(draft_runs):
            run_id = client.trigger(draft_dag_id(job_id), note="triggered by the local stack")
            outcomes[job_id].draft_runs[run_id] = "queued"
    progress(f"triggered {draft_runs} draft run(s) for each of {', '.join(jobs)}")
    for job_id in jobs:
        outcome = outcomes[job_id]
        outcome.draft_runs = client.wait_for_runs(
            draft_dag_id(job_id), list(outcome.draft_runs), timeout=runs_timeout, logs=stack.logs
        )
        progress(f"{draft_dag_id(job_id)}: {_count_states(outcome.draft_runs)}")
    for job_id in jobs:
        outcomes[job_id].promotion_run_id = start_promotion_run(client, promotion_dag_id(job_id))
    progress("started the promotion DAGs")
    for job_id in jobs:
        outcome = outcomes[job_id]
        run_id = outcome.promotion_run_id or ""
        states = client.wait_for_runs(
            promotion_dag_id(job_id), [run_id], timeout=runs_timeout, logs=stack.logs
        )
        outcome.promotion_state = states[run_id]
        try:
            outcome.report = client.xcom(promotion_dag_id(job_id), run_id, "promote")
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 404:
                raise
        progress(f"{promotion_dag_id(job_id)}: run {outcome.promotion_state}, outcome {outcome.status}")
    return outcomes


def start_promotion_run(client: RestClient, dag_id: str, adopt_within: float = 20.0) -> str:
    """Unpause the promotion DAG and return the id of the one run that will evaluate the draft runs.

    Unpausing lets the scheduler create the DAG's scheduled run (its daily evaluation, ``catchup=False``)
    at once. That run is adopted rather than adding a manual one: two promotion runs would decide twice
    (``max_active_runs=1`` runs them one after the other, and the second finds the job already decided).
    Only when the scheduler creates none within ``adopt_within`` seconds is a run triggered.
    """
    client.set_paused(dag_id, False)
    deadline = time.monotonic() + adopt_within
    while time.monotonic() < deadline:
        runs = client.dag_runs(dag_id)
        if runs:
            return str(runs[-1]["dag_run_id"])
        time.sleep(1.0)
    return client.trigger(dag_id, note="triggered by the local stack")


def _count_states(states: Mapping[str, str]) -> str:
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
