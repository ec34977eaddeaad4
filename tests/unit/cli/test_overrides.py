"""Tests of the audited override commands: promote, reject, rollback, resubmit, history."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from airflow_sla_promotion.cli import main
from airflow_sla_promotion.config_store import load_job

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

JOB = """\
# Orders ingestion.
job_id: orders
job_name: Orders
tenant: orders
image: registry.example.com/orders/ingest:1.4
schedule_config:
  cron: "0 2 * * *"   # nightly
resource_requirements:
  cpu_cores: 2
  memory_gb: 4
  estimated_runtime_minutes: 30
"""


class FakeAirflowApi:
    """A local HTTP server standing in for the Airflow REST API: records DAG pause/unpause calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.missing: set[str] = set()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                dag_id = self.path.split("?")[0].rsplit("/", 1)[-1]
                api.calls.append(("PATCH", dag_id, body))
                status, answer = (
                    (404, {"detail": f"DAG {dag_id} not found"})
                    if dag_id in api.missing
                    else (200, {"dag_id": dag_id, "is_paused": body["is_paused"]})
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def airflow_api() -> Iterator[FakeAirflowApi]:
    api = FakeAirflowApi()
    yield api
    api.close()


@pytest.fixture
def job_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT", raising=False)
    monkeypatch.delenv("AIRFLOW__SLA_PROMOTION__ALLOWED_TARGET_NAMESPACES", raising=False)
    path = tmp_path / "orders.yaml"
    path.write_text(JOB)
    return path


@pytest.fixture
def with_api(airflow_api: FakeAirflowApi, monkeypatch: pytest.MonkeyPatch) -> FakeAirflowApi:
    conn = {"conn_type": "airflow_api", "host": airflow_api.url, "extra": {"token": "test-token-123"}}
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT", json.dumps(conn))
    airflow_api.calls.clear()
    airflow_api.missing.clear()
    return airflow_api


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any] | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_promote_offline_rewrites_the_file_and_reports_skipped_airflow_steps(
    job_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, answer, _ = run(capsys, "promote", str(job_file), "--reason", "go-live approved by CAB-123")

    assert code == 0
    assert answer is not None
    assert answer["status"] == "promoted"
    assert answer["airflow_api"].startswith("not configured")
    assert answer["steps"]["pause_draft_dag"] == "skipped"
    job = load_job(job_file)
    assert (job.status, job.namespace) == ("active", "prod-ingestion-ns")
    entry = job.promotion_history[-1]
    assert (entry.action, entry.actor, entry.reason) == ("promote", "alice", "go-live approved by CAB-123")
    assert job_file.read_text().startswith(JOB)  # the tenant's text and comments are kept


def test_promote_to_a_namespace_outside_the_allowlist_exits_2_and_writes_nothing(
    job_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, answer, err = run(
        capsys, "promote", str(job_file), "--reason", "x", "--target-namespace", "finance"
    )
    assert code == 2
    assert answer is None
    assert "target namespace 'finance' is not in [sla_promotion] allowed_target_namespaces" in err
    assert job_file.read_text() == JOB
    assert not (job_file.parent / ".history").exists()


def test_allowlist_comes_from_the_sla_promotion_options(
    job_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SLA_PROMOTION__ALLOWED_TARGET_NAMESPACES", "prod-ingestion-ns, finance")
    code, answer, _ = run(capsys, "promote", str(job_file), "--reason", "x", "--target-namespace", "finance")
    assert code == 0
    assert load_job(job_file).namespace == "finance"


def report(job_id: str = "orders") -> dict[str, Any]:
    """A report as the promote task returns it (its XCom)."""
    return {
        "job_id": job_id,
        "evaluation_data": {"successful_executions": 4},
        "criteria_results": {"overall_status": "passed"},
        "promotion_decision": {
            "decision": "promote",
            "target_namespace": "prod-ingestion-ns",
            "resource_adjustments": {
                "cpu_cores": {"current": 2, "recommended": 1.25, "reason": "average use 1.0 core"},
                "memory_gb": {"current": 4, "recommended": 3, "reason": "peak 2.4 GiB"},
            },
            "confidence": 0.87,
            "failed_criteria": [],
            "recommendations": [],
            "message": "Job meets all promotion criteria and is ready for production",
        },
        "outcome": {"status": "promoted"},
        "feedback_report": None,
        "evaluated_at": "2026-03-06T00:05:00+00:00",
    }


def test_promote_with_a_decision_report_applies_its_resource_adjustments(
    job_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    decision = tmp_path / "report.json"
    decision.write_text(json.dumps(report()))

    code, answer, _ = run(
        capsys, "promote", str(job_file), "--reason", "re-apply", "--decision", str(decision)
    )

    assert code == 0
    assert answer is not None
    assert answer["resource_adjustments"]["cpu_cores"] == {"from": 2.0, "to": 1.25}
    resources = load_job(job_file).resource_requirements
    assert (resources.cpu_cores, resources.memory_gb) == (1.25, 3)


def test_a_decision_report_for_another_job_is_refused(
    job_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    decision = tmp_path / "report.json"
    decision.write_text(json.dumps(report("customers")))
    code, _, err = run(capsys, "promote", str(job_file), "--reason", "x", "--decision", str(decision))
    assert code == 2
    assert "the report is for job 'customers', not 'orders'" in err
    assert job_file.read_text() == JOB


def test_reject_then_resubmit(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, answer, _ = run(capsys, "reject", str(job_file), "--reason", "reads from a deprecated source")
    assert code == 0
    assert answer is not None
    job = load_job(job_file)
    assert job.status == "promotion_rejected"
    assert job.promotion_feedback is not None
    summary = job.promotion_feedback["evaluation_summary"]
    assert (summary["reason"], summary["decided_by"]) == ("reads from a deprecated source", "alice")

    code, answer, _ = run(capsys, "resubmit", str(job_file), "--reason", "switched to the new source")
    assert code == 0
    job = load_job(job_file)
    assert job.status == "draft"
    assert job.draft.started_at is not None
    assert job.draft.window_ends_at is not None
    assert (job.draft.window_ends_at - job.draft.started_at).days == 7
    assert job.promotion_feedback is None
    assert job.promotion_history[-1].details["previous_feedback"]["evaluation_summary"] == summary


def test_reject_of_a_promoted_job_is_refused(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "promote", str(job_file), "--reason", "x")
    promoted = job_file.read_bytes()
    code, _, err = run(capsys, "reject", str(job_file), "--reason", "y")
    assert code == 2
    assert "Roll the promotion back first" in err
    assert job_file.read_bytes() == promoted


def test_rollback_restores_byte_for_byte_and_history_shows_every_change(
    job_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "promote", str(job_file), "--reason", "go")

    code, answer, _ = run(capsys, "rollback", str(job_file), "--reason", "wrong job")

    assert code == 0
    assert answer is not None
    assert answer["job_status"] == "draft"
    assert job_file.read_text() == JOB

    code, history, _ = run(capsys, "history", str(job_file))
    assert code == 0
    assert history is not None
    assert history["entries"] == []  # the restored content predates the promotion
    assert [(v["action"], v["actor"], v["reason"]) for v in history["versions"]] == [
        ("promote", "alice", "go"),
        ("restore", "alice", "wrong job"),
    ]

    code, _, _ = run(capsys, "rollback", str(job_file), "--to", history["versions"][1]["version"])
    assert code == 0
    assert load_job(job_file).status == "active"


def test_rollback_without_history_exits_2(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rollback", str(job_file))
    assert code == 2
    assert "no previous version" in err


@pytest.mark.parametrize("name", ["orders.txt", "Orders.yaml", "a__b.yaml", "missing.yaml"])
def test_bad_job_file_paths_exit_2(job_file: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, _, err = run(capsys, "promote", str(job_file.parent / name), "--reason", "x")
    assert code == 2
    assert err.startswith("sla-promotion: error: ")


# --- with an airflow_api connection --------------------------------------------------------------------


def test_promote_pauses_the_draft_dags_through_the_api(
    job_file: Path, capsys: pytest.CaptureFixture[str], with_api: FakeAirflowApi
) -> None:
    code, answer, _ = run(capsys, "promote", str(job_file), "--reason", "go")

    assert code == 0
    assert answer is not None
    assert answer["airflow_api"] == "connection airflow_api_default"
    assert with_api.calls == [
        ("PATCH", "orders__draft", {"is_paused": True}),
        ("PATCH", "orders__promotion", {"is_paused": True}),
    ]

    with_api.calls.clear()
    code, answer, _ = run(capsys, "rollback", str(job_file))
    assert code == 0
    assert with_api.calls == [
        ("PATCH", "orders__draft", {"is_paused": False}),
        ("PATCH", "orders__promotion", {"is_paused": False}),
    ]


def test_a_failed_api_step_is_reported_with_exit_1_and_retried_by_the_next_promote(
    job_file: Path, capsys: pytest.CaptureFixture[str], with_api: FakeAirflowApi
) -> None:
    with_api.missing.add("orders__promotion")

    code, answer, err = run(capsys, "promote", str(job_file), "--reason", "go")

    assert code == 1
    assert answer is not None
    assert answer["pending_steps"] == ["pause_promotion_dag"]
    assert "pending steps: pause_promotion_dag" in err
    assert load_job(job_file).status == "active"

    with_api.missing.clear()
    with_api.calls.clear()
    code, answer, _ = run(capsys, "promote", str(job_file), "--reason", "go")
    assert code == 0
    assert answer is not None
    assert answer["changed"] is False
    assert answer["pending_steps"] == []
    assert ("PATCH", "orders__promotion", {"is_paused": True}) in with_api.calls
