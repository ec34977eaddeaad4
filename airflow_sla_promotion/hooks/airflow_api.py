"""Airflow REST API v2 client (sync and async httpx) for reading draft runs from task code and triggers."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import ssl

    from airflow.sdk import Connection

T = TypeVar("T")

#: Status codes worth another attempt: the server or a proxy in front of it was briefly unavailable.
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
#: The largest page the list endpoints honour by default (``[api] maximum_page_limit``).
DEFAULT_PAGE_SIZE = 100
#: At most this many run ids per task-instance batch request: one page of runs, so one request per page
#: of task instances (one task per run) and request bodies stay small.
RUN_ID_CHUNK = DEFAULT_PAGE_SIZE


class AirflowApiError(AirflowException):
    """A call to the Airflow REST API failed; the message names the call, never a credential."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status of the failed answer; None for timeouts and connection errors.
        self.response_status = status_code


# --- response models: only the fields this provider reads; unknown fields are ignored ------------------


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class ApiDagRun(_ApiModel):
    """One DAG run as ``/api/v2/dags/~/dagRuns/list`` returns it."""

    dag_id: str
    run_id: str = Field(validation_alias=AliasChoices("dag_run_id", "run_id"))
    state: str
    run_type: str | None = None
    run_after: datetime | None = None
    logical_date: datetime | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class ApiTaskInstance(_ApiModel):
    """One task instance as ``/api/v2/dags/~/dagRuns/~/taskInstances/list`` returns it."""

    dag_id: str
    task_id: str
    run_id: str = Field(validation_alias=AliasChoices("dag_run_id", "run_id"))
    map_index: int = -1
    state: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration: float | None = None
    try_number: int = 0
    max_tries: int | None = None
    hostname: str | None = None
    executor: str | None = None
    queued_when: datetime | None = None


class ApiDag(_ApiModel):
    """The part of a DAG's REST representation the provider needs."""

    dag_id: str
    is_paused: bool


# --- connection settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    base_url: str
    login: str | None
    password: str | None
    token: str | None
    verify: bool
    timeout: float

    def __repr__(self) -> str:  # credentials never reach a log line through a repr
        return f"_Settings(base_url={self.base_url!r})"


@dataclass(frozen=True)
class _Call:
    """One REST call, described without I/O so that the sync and async clients share all logic."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    missing_ok: bool = False
    authenticated: bool = True


#: A generator that yields calls, receives each call's decoded JSON body (None for a tolerated 404) and
#: returns a result: the shared pagination and decoding logic of the sync and async methods.
_Plan = Generator[_Call, Any, T]


def _base_url(conn: Connection) -> str:
    host = (conn.host or "").strip()
    if not host:
        raise AirflowApiError(f"Connection {conn.conn_id!r} has no host (the API base URL).")
    if "://" not in host:
        host = f"http://{host}"
    url = httpx.URL(host)
    if conn.port and url.port is None:
        url = url.copy_with(port=int(conn.port))
    return str(url).rstrip("/")


def _as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in {"false", "0", "no", "off"}


def _settings_from(conn: Connection, extra: dict[str, Any], default_timeout: float) -> _Settings:
    timeout = extra.get("timeout")
    return _Settings(
        base_url=_base_url(conn),
        login=conn.login or None,
        password=conn.password or None,
        token=extra.get("token") or None,
        verify=_as_bool(extra.get("verify_ssl"), True),
        timeout=float(timeout) if timeout not in (None, "") else default_timeout,
    )


def _detail(response: httpx.Response) -> str:
    """A short, credential-free description of an error response (the server's ``detail``, if any)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return f"HTTP {response.status_code}: {detail[:200]}"
    return f"HTTP {response.status_code}"


def _decode(call: _Call, response: httpx.Response) -> Any:
    if response.status_code == 404 and call.missing_ok:
        return None
    if response.is_success:
        return response.json() if response.content else None
    raise AirflowApiError(
        f"{call.method} {call.path} failed: {_detail(response)}", status_code=response.status_code
    )


def _xcom_value(body: Any) -> Any:
    """The value of an XCom entry response; a value the server returns as JSON text is parsed."""
    if body is None:
        return None
    value = body.get("value")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class AirflowApiHook(BaseHook):
    """
    Reads DAG runs, task instances and XComs from the Airflow REST API v2, and pauses DAGs.

    Task code and triggers may not use the metadata DB in Airflow 3; this hook is how they read other
    DAGs' runs. The connection (type ``airflow_api``) holds the API base URL as host (e.g.
    ``http://airflow-api-server:8080``) and either login/password (exchanged for a JWT at
    ``POST /auth/token``) or a bearer ``token`` extra; ``verify_ssl`` and ``timeout`` are optional extras.

    Every method has an async twin prefixed with ``a`` (``list_dag_runs`` / ``alist_dag_runs``). The
    token is cached on the hook and fetched again once when the API answers 401. Server errors (5xx),
    timeouts and connection errors are retried ``max_retries`` times with exponential backoff; then an
    :class:`AirflowApiError` names the call that failed. List calls always paginate.

    :param airflow_conn_id: connection id of type ``airflow_api``.
    :param transport: httpx transport for the sync client (tests pass ``httpx.MockTransport``).
    :param async_transport: httpx transport for the async client.
    :param max_retries: further attempts after a 5xx answer, a timeout or a connection error.
    :param retry_backoff: seconds before the first retry; doubles on each further retry.
    :param page_size: rows requested per page.
    :param timeout: request timeout in seconds when the connection sets none.
    """

    conn_name_attr = "airflow_conn_id"
    default_conn_name = "airflow_api_default"
    conn_type = "airflow_api"
    hook_name = "Airflow REST API"

    def __init__(
        self,
        airflow_conn_id: str = default_conn_name,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.airflow_conn_id = airflow_conn_id
        self.transport = transport
        self.async_transport = async_transport
        self.max_retries = max(0, max_retries)
        self.retry_backoff = retry_backoff
        self.page_size = max(1, page_size)
        self.timeout = timeout
        self._settings: _Settings | None = None
        self._token: str | None = None

    # --- public API: runs, task instances, XComs, pause ------------------------------------------------

    def list_dag_runs(
        self, dag_id: str, *, limit: int | None = None, states: Sequence[str] | None = None
    ) -> list[ApiDagRun]:
        """The DAG's runs, newest first (by ``run_after``): at most ``limit``, all when None."""
        return self._run(self._plan_dag_runs(dag_id, limit, states))

    async def alist_dag_runs(
        self, dag_id: str, *, limit: int | None = None, states: Sequence[str] | None = None
    ) -> list[ApiDagRun]:
        """Async :meth:`list_dag_runs`."""
        return await self._arun(self._plan_dag_runs(dag_id, limit, states))

    def list_task_instances(
        self, dag_id: str, run_ids: Sequence[str], *, task_ids: Sequence[str] | None = None
    ) -> list[ApiTaskInstance]:
        """Task instances of the given runs of one DAG (batch requests, paginated); all tasks when None."""
        return self._run(self._plan_task_instances(dag_id, run_ids, task_ids))

    async def alist_task_instances(
        self, dag_id: str, run_ids: Sequence[str], *, task_ids: Sequence[str] | None = None
    ) -> list[ApiTaskInstance]:
        """Async :meth:`list_task_instances`."""
        return await self._arun(self._plan_task_instances(dag_id, run_ids, task_ids))

    def get_xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str, *, map_index: int = -1) -> Any:
        """One XCom value as stored in the metadata DB (a custom XCom backend is bypassed); None if absent."""
        return self._run(self._plan_xcom(dag_id, run_id, task_id, key, map_index))

    async def aget_xcom_value(
        self, dag_id: str, run_id: str, task_id: str, key: str, *, map_index: int = -1
    ) -> Any:
        """Async :meth:`get_xcom_value`."""
        return await self._arun(self._plan_xcom(dag_id, run_id, task_id, key, map_index))

    def pause_dag(self, dag_id: str, paused: bool = True) -> ApiDag:
        """Pause (or, with ``paused=False``, unpause) a DAG; returns its new state."""
        return self._run(self._plan_pause(dag_id, paused))

    async def apause_dag(self, dag_id: str, paused: bool = True) -> ApiDag:
        """Async :meth:`pause_dag`."""
        return await self._arun(self._plan_pause(dag_id, paused))

    def get_dag(self, dag_id: str) -> ApiDag | None:
        """The DAG's REST representation, or None when the API does not know it."""
        return self._run(self._plan_get_dag(dag_id))

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection from the UI: authenticate and read the API's version."""
        try:
            body = self._run(self._single(_Call("GET", "/api/v2/version")))
        except AirflowApiError as err:
            return False, str(err)
        return True, f"Connected to Airflow {body.get('version', '?')}"

    # --- plans: what to call and how to read the answers (no I/O here) ----------------------------------

    @staticmethod
    def _single(call: _Call) -> _Plan[Any]:
        body = yield call
        return body

    def _paginate(
        self, path: str, body: dict[str, Any], items_key: str, limit: int | None
    ) -> _Plan[list[Any]]:
        items: list[Any] = []
        offset = 0
        while limit is None or len(items) < limit:
            page_limit = self.page_size if limit is None else min(self.page_size, limit - len(items))
            page = yield _Call("POST", path, json={**body, "page_offset": offset, "page_limit": page_limit})
            if not isinstance(page, dict):
                raise AirflowApiError(f"POST {path} returned no page of {items_key}")
            rows = list(page.get(items_key) or [])
            items.extend(rows)
            offset += len(rows)
            total = page.get("total_entries")
            # A server may cap page_limit below what was asked, so only an empty page or the total ends it.
            if not rows or (isinstance(total, int) and offset >= total):
                break
        return items if limit is None else items[:limit]

    def _plan_dag_runs(
        self, dag_id: str, limit: int | None, states: Sequence[str] | None
    ) -> _Plan[list[ApiDagRun]]:
        body: dict[str, Any] = {"dag_ids": [dag_id], "order_by": "-run_after"}
        if states:
            body["states"] = list(states)
        rows = yield from self._paginate("/api/v2/dags/~/dagRuns/list", body, "dag_runs", limit)
        return [ApiDagRun.model_validate(row) for row in rows]

    def _plan_task_instances(
        self, dag_id: str, run_ids: Sequence[str], task_ids: Sequence[str] | None
    ) -> _Plan[list[ApiTaskInstance]]:
        result: list[ApiTaskInstance] = []
        unique = list(dict.fromkeys(run_ids))
        for start in range(0, len(unique), RUN_ID_CHUNK):
            body: dict[str, Any] = {
                "dag_ids": [dag_id],
                "dag_run_ids": unique[start : start + RUN_ID_CHUNK],
                "order_by": "id",
            }
            if task_ids:
                body["task_ids"] = list(task_ids)
            rows = yield from self._paginate(
                "/api/v2/dags/~/dagRuns/~/taskInstances/list", body, "task_instances", None
            )
            result.extend(ApiTaskInstance.model_validate(row) for row in rows)
        return result

    @staticmethod
    def _plan_xcom(dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> _Plan[Any]:
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/xcomEntries/{_q(key)}"
        )
        body = yield _Call("GET", path, params={"map_index": map_index}, missing_ok=True)
        return _xcom_value(body)

    @staticmethod
    def _plan_pause(dag_id: str, paused: bool) -> _Plan[ApiDag]:
        body = yield _Call(
            "PATCH",
            f"/api/v2/dags/{_q(dag_id)}",
            json={"is_paused": paused},
            params={"update_mask": "is_paused"},
        )
        return ApiDag.model_validate(body)

    @staticmethod
    def _plan_get_dag(dag_id: str) -> _Plan[ApiDag | None]:
        body = yield _Call("GET", f"/api/v2/dags/{_q(dag_id)}", missing_ok=True)
        return None if body is None else ApiDag.model_validate(body)

    # --- sync driver ------------------------------------------------------------------------------------

    def _load_settings(self) -> _Settings:
        if self._settings is None:
            conn = self.get_connection(self.airflow_conn_id)
            self._settings = _settings_from(conn, conn.extra_dejson, self.timeout)
            self._token = self._token or self._settings.token
        return self._settings

    def _run(self, plan: _Plan[T]) -> T:
        settings = self._load_settings()
        with httpx.Client(
            base_url=settings.base_url,
            transport=self.transport,
            timeout=settings.timeout,
            verify=_verify(settings.verify),
        ) as client:
            try:
                call = next(plan)
                while True:
                    call = plan.send(self._request(client, settings, call))
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    def _request(self, client: httpx.Client, settings: _Settings, call: _Call) -> Any:
        refreshed = False
        attempt = 0
        while True:
            headers = {}
            if call.authenticated:
                headers["Authorization"] = f"Bearer {self._token or self._login(client, settings)}"
            try:
                response = client.request(
                    call.method, call.path, json=call.json, params=call.params, headers=headers
                )
            except httpx.TransportError as err:
                attempt = self._retry_or_raise(call, attempt, _transport_failure(err), time.sleep)
                continue
            if response.status_code == 401 and call.authenticated and not refreshed and settings.login:
                refreshed = True
                self._token = None
                continue
            if response.status_code in RETRYABLE_STATUS:
                attempt = self._retry_or_raise(
                    call, attempt, _detail(response), time.sleep, response.status_code
                )
                continue
            return _decode(call, response)

    def _login(self, client: httpx.Client, settings: _Settings) -> str:
        call = self._login_call(settings)
        token = self._token_from(self._request(client, settings, call))
        from airflow.sdk.log import mask_secret

        mask_secret(token)
        self._token = token
        return token

    # --- async driver -----------------------------------------------------------------------------------

    async def _aload_settings(self) -> _Settings:
        if self._settings is None:
            conn = await self.aget_connection(self.airflow_conn_id)
            extra = await conn.aextra_dejson()
            self._settings = _settings_from(conn, extra, self.timeout)
            self._token = self._token or self._settings.token
        return self._settings

    async def _arun(self, plan: _Plan[T]) -> T:
        settings = await self._aload_settings()
        async with httpx.AsyncClient(
            base_url=settings.base_url,
            transport=self.async_transport,
            timeout=settings.timeout,
            verify=_verify(settings.verify),
        ) as client:
            try:
                call = next(plan)
                while True:
                    call = plan.send(await self._arequest(client, settings, call))
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    async def _arequest(self, client: httpx.AsyncClient, settings: _Settings, call: _Call) -> Any:
        refreshed = False
        attempt = 0
        while True:
            headers = {}
            if call.authenticated:
                headers["Authorization"] = f"Bearer {self._token or await self._alogin(client, settings)}"
            try:
                response = await client.request(
                    call.method, call.path, json=call.json, params=call.params, headers=headers
                )
            except httpx.TransportError as err:
                delay = self._next_delay(call, attempt, _transport_failure(err))
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if response.status_code == 401 and call.authenticated and not refreshed and settings.login:
                refreshed = True
                self._token = None
                continue
            if response.status_code in RETRYABLE_STATUS:
                delay = self._next_delay(call, attempt, _detail(response), response.status_code)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            return _decode(call, response)

    async def _alogin(self, client: httpx.AsyncClient, settings: _Settings) -> str:
        call = self._login_call(settings)
        token = self._token_from(await self._arequest(client, settings, call))
        from airflow.sdk.log import amask_secret

        await amask_secret(token)
        self._token = token
        return token

    # --- shared helpers ---------------------------------------------------------------------------------

    def _login_call(self, settings: _Settings) -> _Call:
        if not (settings.login and settings.password):
            raise AirflowApiError(
                f"Connection {self.airflow_conn_id!r} has neither a token nor login and password; "
                "the Airflow REST API needs one of them."
            )
        return _Call(
            "POST",
            "/auth/token",
            json={"username": settings.login, "password": settings.password},
            authenticated=False,
        )

    def _token_from(self, body: Any) -> str:
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AirflowApiError(
                f"POST /auth/token for connection {self.airflow_conn_id!r} returned no token."
            )
        return token

    def _next_delay(self, call: _Call, attempt: int, failure: str, status_code: int | None = None) -> float:
        """Seconds to wait before the next attempt, or :class:`AirflowApiError` when attempts are spent."""
        if attempt >= self.max_retries:
            raise AirflowApiError(
                f"{call.method} {call.path} failed after {attempt + 1} attempt(s): {failure}",
                status_code=status_code,
            )
        self.log.warning(
            "%s %s failed (%s); retry %d of %d",
            call.method,
            call.path,
            failure,
            attempt + 1,
            self.max_retries,
        )
        return float(self.retry_backoff * (2**attempt))

    def _retry_or_raise(
        self,
        call: _Call,
        attempt: int,
        failure: str,
        sleep: Callable[[float], None],
        status_code: int | None = None,
    ) -> int:
        sleep(self._next_delay(call, attempt, failure, status_code))
        return attempt + 1


def _transport_failure(err: httpx.TransportError) -> str:
    if isinstance(err, httpx.TimeoutException):
        return f"timed out ({type(err).__name__})"
    return f"connection error ({type(err).__name__})"


@functools.lru_cache(maxsize=4)
def _verifying_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # httpx's default verifying context, built once per CA setting: loading the CA bundle takes ~20 ms,
    # which a client made per call would otherwise pay on every request (one XCom read per draft run).
    return httpx.create_ssl_context()


def _verify(verify: bool) -> ssl.SSLContext | bool:
    """What a client's ``verify`` gets: a shared verifying TLS context, or False."""
    if not verify:
        return False
    return _verifying_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def _q(part: str) -> str:
    return quote(part, safe="")
