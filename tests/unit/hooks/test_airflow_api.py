"""AirflowApiHook against an in-memory REST API (httpx.MockTransport): paging, auth, retries, secrecy."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from airflow_sla_promotion.hooks.airflow_api import RUN_ID_CHUNK, AirflowApiError, AirflowApiHook

PASSWORD = "pw-Zebra-7781-secret"
CONN_ID = "unit_airflow_api"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeApi:
    """A tiny stand-in for the v2 API: real paging semantics, JWT issuing, injectable failures."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    xcoms: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)
    page_cap: int = 100
    failures: list[Any] = field(default_factory=list)  # status codes or exceptions, consumed in order
    valid_tokens: set[str] = field(default_factory=set)
    issued: int = 0
    requests: list[httpx.Request] = field(default_factory=list)
    paused: dict[str, bool] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return httpx.Response(failure, json={"detail": "temporarily unavailable"})
        path = request.url.path
        if path == "/auth/token" and request.method == "POST":
            body = json.loads(request.content)
            if body != {"username": "admin", "password": PASSWORD}:
                return httpx.Response(401, json={"detail": "Invalid credentials"})
            self.issued += 1
            token = f"jwt-token-number-{self.issued}"
            self.valid_tokens.add(token)
            return httpx.Response(201, json={"access_token": token})
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid_tokens:
            return httpx.Response(401, json={"detail": "Not authenticated"})
        if path == "/api/v2/dags/~/dagRuns/list":
            body = json.loads(request.content)
            rows = [r for r in self.runs if r["dag_id"] in body["dag_ids"]]
            if body.get("states"):
                rows = [r for r in rows if r["state"] in body["states"]]
            assert body["order_by"] == "-run_after"
            rows.sort(key=lambda r: r["run_after"], reverse=True)
            return self._page(body, rows, "dag_runs")
        if path == "/api/v2/dags/~/dagRuns/~/taskInstances/list":
            body = json.loads(request.content)
            rows = [
                t
                for t in self.task_instances
                if t["dag_id"] in body["dag_ids"]
                and t["dag_run_id"] in body["dag_run_ids"]
                and (not body.get("task_ids") or t["task_id"] in body["task_ids"])
            ]
            return self._page(body, rows, "task_instances")
        if "/xcomEntries/" in path:
            parts = path.split("/")
            key = (parts[4], parts[6], parts[8], parts[10])
            if key not in self.xcoms:
                return httpx.Response(404, json={"detail": "XCom entry not found"})
            return httpx.Response(200, json={"key": parts[10], "value": self.xcoms[key]})
        if path.startswith("/api/v2/dags/") and request.method == "PATCH":
            dag_id = path.rsplit("/", 1)[1]
            assert request.url.params.get("update_mask") == "is_paused"
            self.paused[dag_id] = json.loads(request.content)["is_paused"]
            return httpx.Response(200, json={"dag_id": dag_id, "is_paused": self.paused[dag_id], "x": 1})
        return httpx.Response(404, json={"detail": "no such route"})

    def _page(self, body: dict[str, Any], rows: list[dict[str, Any]], key: str) -> httpx.Response:
        offset, limit = body["page_offset"], min(body["page_limit"], self.page_cap)
        return httpx.Response(200, json={key: rows[offset : offset + limit], "total_entries": len(rows)})

    def api_paths(self) -> list[str]:
        return [r.url.path for r in self.requests if r.url.path != "/auth/token"]

    def logins(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/auth/token")


def logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """Everything logged so far: stdlib records and Airflow's structlog output (printed to the console)."""
    out = capsys.readouterr()
    return caplog.text + out.out + out.err


def make_run(dag_id: str, i: int, state: str = "success") -> dict[str, Any]:
    when = (T0 + timedelta(hours=i)).isoformat()
    return {
        "dag_run_id": f"run_{i:04d}",
        "dag_id": dag_id,
        "state": state,
        "run_after": when,
        "start_date": when,
        "end_date": when,
        "run_type": "scheduled",
        "unknown_field": {"ignored": True},
    }


def make_ti(dag_id: str, run_id: str, task_id: str = "draft_run", state: str = "success") -> dict[str, Any]:
    return {
        "id": f"{run_id}-{task_id}",
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "task_id": task_id,
        "map_index": -1,
        "state": state,
        "start_date": T0.isoformat(),
        "end_date": (T0 + timedelta(minutes=5)).isoformat(),
        "duration": 300.0,
        "try_number": 1,
        "queued_when": None,
        "rendered_fields": {},
    }


@pytest.fixture
def api_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "airflow_api",
        "host": "http://api.test:8080",
        "login": "admin",
        "password": PASSWORD,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def hook_for(api: FakeApi, **kwargs: Any) -> AirflowApiHook:
    transport = httpx.MockTransport(api.handler)
    return AirflowApiHook(CONN_ID, transport=transport, async_transport=transport, retry_backoff=0, **kwargs)


@pytest.mark.usefixtures("api_conn")
class TestPaging:
    def test_all_runs_across_pages_even_when_server_caps_page_size(self, api: FakeApi) -> None:
        api.runs = [make_run("d", i) for i in range(250)] + [make_run("other", i) for i in range(5)]
        api.page_cap = 40
        runs = hook_for(api).list_dag_runs("d")
        assert [r.run_id for r in runs] == [f"run_{i:04d}" for i in reversed(range(250))]
        offsets = [json.loads(r.content)["page_offset"] for r in api.requests if r.url.path.endswith("/list")]
        assert offsets == list(range(0, 250, 40))

    def test_limit_returns_newest_runs_only(self, api: FakeApi) -> None:
        api.runs = [make_run("d", i) for i in range(30)]
        runs = hook_for(api, page_size=7).list_dag_runs("d", limit=10)
        assert [r.run_id for r in runs] == [f"run_{i:04d}" for i in range(29, 19, -1)]
        assert runs[0].run_after == T0 + timedelta(hours=29)

    def test_state_filter_is_sent(self, api: FakeApi) -> None:
        api.runs = [make_run("d", i, "success" if i % 2 else "failed") for i in range(6)]
        runs = hook_for(api).list_dag_runs("d", states=["success"])
        assert {r.state for r in runs} == {"success"}
        assert len(runs) == 3

    def test_task_instances_batched_by_run_ids_and_paginated(self, api: FakeApi) -> None:
        run_ids = [f"run_{i:04d}" for i in range(120)]
        api.task_instances = [make_ti("d", r) for r in run_ids] + [make_ti("d", r, "other") for r in run_ids]
        api.page_cap = 30
        tis = hook_for(api).list_task_instances("d", run_ids, task_ids=["draft_run"])
        assert sorted(t.run_id for t in tis) == run_ids
        assert {t.task_id for t in tis} == {"draft_run"}
        assert tis[0].duration == 300.0
        bodies = [json.loads(r.content) for r in api.requests if r.url.path.endswith("/list")]
        assert max(len(b["dag_run_ids"]) for b in bodies) <= RUN_ID_CHUNK
        assert len({tuple(b["dag_run_ids"]) for b in bodies}) == 2  # 120 run ids: two batches
        assert {rid for b in bodies for rid in b["dag_run_ids"]} == set(run_ids)

    async def test_async_paging_matches_sync(self, api: FakeApi) -> None:
        api.runs = [make_run("d", i) for i in range(55)]
        api.page_cap = 20
        runs = await hook_for(api).alist_dag_runs("d")
        assert len(runs) == 55
        assert runs[-1].run_id == "run_0000"
        tis_api = FakeApi(task_instances=[make_ti("d", r.run_id) for r in runs], page_cap=20)
        tis = await hook_for(tis_api).alist_task_instances("d", [r.run_id for r in runs])
        assert len(tis) == 55


@pytest.mark.usefixtures("api_conn")
class TestAuth:
    def test_token_fetched_once_and_cached(self, api: FakeApi) -> None:
        api.runs = [make_run("d", 1)]
        hook = hook_for(api)
        hook.list_dag_runs("d")
        hook.list_dag_runs("d")
        assert api.logins() == 1
        assert all(
            r.headers["Authorization"] == "Bearer jwt-token-number-1"
            for r in api.requests
            if r.url.path != "/auth/token"
        )

    def test_expired_token_is_refreshed_once(self, api: FakeApi) -> None:
        api.runs = [make_run("d", 1)]
        hook = hook_for(api)
        hook.list_dag_runs("d")
        api.valid_tokens.clear()  # the token expired
        assert [r.run_id for r in hook.list_dag_runs("d")] == ["run_0001"]
        assert api.logins() == 2

    def test_persistent_401_fails_after_one_refresh(self, api: FakeApi) -> None:
        hook = hook_for(api)
        original = api.handler

        def always_401(request: httpx.Request) -> httpx.Response:
            response = original(request)
            return response if request.url.path == "/auth/token" else httpx.Response(401, json={})

        hook.transport = httpx.MockTransport(always_401)
        with pytest.raises(AirflowApiError) as err:
            hook.list_dag_runs("d")
        assert err.value.response_status == 401
        assert api.logins() == 2

    def test_static_token_from_extra(self, api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {
            "conn_type": "airflow_api",
            "host": "api.test",
            "port": 8080,
            "extra": {"token": "static-tok-123"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_TOKEN_ONLY", json.dumps(conn))
        api.valid_tokens.add("static-tok-123")
        api.runs = [make_run("d", 1)]
        hook = AirflowApiHook("token_only", transport=httpx.MockTransport(api.handler), retry_backoff=0)
        assert len(hook.list_dag_runs("d")) == 1
        assert api.logins() == 0
        assert str(api.requests[0].url).startswith("http://api.test:8080/api/v2/")

    def test_rejected_static_token_without_login_is_a_clear_error(
        self, api: FakeApi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        conn = {"conn_type": "airflow_api", "host": "http://api.test", "extra": {"token": "revoked-tok-999"}}
        monkeypatch.setenv("AIRFLOW_CONN_TOKEN_ONLY", json.dumps(conn))
        hook = AirflowApiHook("token_only", transport=httpx.MockTransport(api.handler), retry_backoff=0)
        with pytest.raises(AirflowApiError, match="HTTP 401") as err:
            hook.list_dag_runs("d")
        assert "revoked-tok-999" not in str(err.value)

    def test_connection_without_credentials(self, api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NO_AUTH", json.dumps({"conn_type": "airflow_api", "host": "http://a"})
        )
        hook = AirflowApiHook("no_auth", transport=httpx.MockTransport(api.handler))
        with pytest.raises(AirflowApiError, match="neither a token nor login and password"):
            hook.list_dag_runs("d")
        assert api.requests == []

    async def test_async_refresh(self, api: FakeApi) -> None:
        api.runs = [make_run("d", 1)]
        hook = hook_for(api)
        await hook.alist_dag_runs("d")
        api.valid_tokens.clear()
        assert len(await hook.alist_dag_runs("d")) == 1
        assert api.logins() == 2


@pytest.mark.usefixtures("api_conn")
class TestRetries:
    def test_5xx_is_retried_then_succeeds(self, api: FakeApi) -> None:
        api.runs = [make_run("d", 1)]
        api.failures = [503, 502]
        hook = hook_for(api)
        assert len(hook.list_dag_runs("d")) == 1
        assert len(api.requests) == 4  # two failures, the login, the successful list

    def test_5xx_exhausts_bounded_retries(self, api: FakeApi) -> None:
        hook = hook_for(api, max_retries=2)
        hook._token = "jwt-token-number-0"
        api.valid_tokens.add("jwt-token-number-0")
        api.failures = [500] * 10
        with pytest.raises(
            AirflowApiError, match=r"dagRuns/list failed after 3 attempt\(s\): HTTP 500"
        ) as err:
            hook.list_dag_runs("d")
        assert err.value.response_status == 500
        assert len(api.requests) == 3

    def test_4xx_is_not_retried(self, api: FakeApi) -> None:
        hook = hook_for(api)
        with pytest.raises(AirflowApiError, match="no such route"):
            hook._run(hook._single(_call("GET", "/api/v2/nowhere")))
        assert len(api.api_paths()) == 1

    def test_timeouts_end_in_a_clear_failure(
        self, api: FakeApi, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        api.failures = [httpx.ReadTimeout("read timed out")] * 5
        with pytest.raises(AirflowApiError, match=r"POST /auth/token failed after 2 attempt\(s\): timed out"):
            hook_for(api, max_retries=1).list_dag_runs("d")
        assert "retry 1 of 1" in logged(caplog, capsys)

    def test_timeout_then_recovery(self, api: FakeApi) -> None:
        api.runs = [make_run("d", 1)]
        api.failures = [httpx.ConnectTimeout("connect timed out"), httpx.ConnectError("refused")]
        assert len(hook_for(api).list_dag_runs("d")) == 1

    async def test_async_retries_are_bounded(self, api: FakeApi) -> None:
        api.failures = [httpx.ReadTimeout("slow")] * 3 + [503] * 3
        with pytest.raises(AirflowApiError, match="failed after 4 attempt"):
            await hook_for(api, max_retries=3).alist_dag_runs("d")
        assert len(api.requests) == 4


@pytest.mark.usefixtures("api_conn")
class TestSecrecy:
    def test_credentials_never_in_logs_or_errors(
        self, api: FakeApi, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        caplog.set_level(logging.DEBUG)
        api.runs = [make_run("d", 1)]
        hook = hook_for(api)
        hook.list_dag_runs("d")
        api.valid_tokens.clear()
        api.failures = [503]
        hook.list_dag_runs("d")
        api.failures = [500] * 10
        with pytest.raises(AirflowApiError) as err:
            hook.pause_dag("d")
        text = logged(caplog, capsys)
        assert "retry 1 of 3" in text
        assert "/api/v2/dags/~/dagRuns/list" in text  # httpx's request log is captured too
        for secret in (PASSWORD, "jwt-token-number-1", "jwt-token-number-2"):
            assert secret not in text
            assert secret not in str(err.value)
            assert secret not in repr(hook._settings)

    def test_wrong_password_error_names_no_password(
        self,
        api: FakeApi,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        caplog.set_level(logging.DEBUG)
        conn = {
            "conn_type": "airflow_api",
            "host": "http://a",
            "login": "admin",
            "password": "Wrong-Pass-4242",
        }
        monkeypatch.setenv("AIRFLOW_CONN_BAD_PW", json.dumps(conn))
        hook = AirflowApiHook("bad_pw", transport=httpx.MockTransport(api.handler))
        with pytest.raises(AirflowApiError, match="auth/token failed: HTTP 401: Invalid credentials") as err:
            hook.list_dag_runs("d")
        assert "Wrong-Pass-4242" not in str(err.value)
        assert "Wrong-Pass-4242" not in logged(caplog, capsys)


@pytest.mark.usefixtures("api_conn")
class TestXComAndPause:
    def test_xcom_value_json_text_and_native(self, api: FakeApi) -> None:
        record = {"execution_id": "e1", "status": "completed"}
        api.xcoms[("d", "run 1", "draft_run", "draft_execution")] = json.dumps(record)
        api.xcoms[("d", "run_2", "draft_run", "draft_execution")] = record
        hook = hook_for(api)
        assert hook.get_xcom_value("d", "run 1", "draft_run", "draft_execution") == record
        assert hook.get_xcom_value("d", "run_2", "draft_run", "draft_execution") == record
        assert hook.get_xcom_value("d", "run_3", "draft_run", "draft_execution") is None
        assert "run%201" in str(api.requests[1].url)

    async def test_async_xcom(self, api: FakeApi) -> None:
        api.xcoms[("d", "r", "t", "k")] = [1, 2]
        assert await hook_for(api).aget_xcom_value("d", "r", "t", "k") == [1, 2]

    def test_pause_and_unpause(self, api: FakeApi) -> None:
        hook = hook_for(api)
        dag = hook.pause_dag("job__draft")
        assert dag.is_paused is True
        assert api.paused == {"job__draft": True}
        assert hook.pause_dag("job__draft", paused=False).is_paused is False
        patch = [r for r in api.requests if r.method == "PATCH"][0]
        assert json.loads(patch.content) == {"is_paused": True}


def _call(method: str, path: str) -> Any:
    from airflow_sla_promotion.hooks.airflow_api import _Call

    return _Call(method, path)
