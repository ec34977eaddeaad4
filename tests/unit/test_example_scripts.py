"""The example ingestion jobs: real CSV -> SQLite loads whose job reports say what each example shows."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ingestion"
JOBS = REPO / "dags" / "jobs"

sys.path.insert(0, str(EXAMPLES))

from sla_promotion_examples import _common, clickstream_sessions, customers_daily, orders_hourly  # noqa: E402

if TYPE_CHECKING:
    import pytest


def run_job(module: str, data: Path, tmp_path: Path, **env: str) -> tuple[int, dict[str, Any]]:
    """Run an example as its container would (``python -m ...``) and return its exit code and report."""
    report = tmp_path / f"termination-{module}-{len(list(tmp_path.glob('termination-*')))}"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
        _common.DATA_DIR_ENV: str(data),
        _common.PAGE_LATENCY_ENV: "0",
        "SLA_PROMOTION_TERMINATION_LOG": str(report),
        "SLA_PROMOTION_USAGE_SOURCE": "rusage",
        **env,
    }
    completed = subprocess.run(
        [sys.executable, "-m", f"sla_promotion_examples.{module}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.exists(), completed.stdout + completed.stderr
    return completed.returncode, json.loads(report.read_text())


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute(sql).fetchall()


def test_orders_hourly_loads_the_hour_and_rejects_the_refund(tmp_path: Path) -> None:
    started = datetime.now(UTC)
    code, report = run_job("orders_hourly", tmp_path / "data", tmp_path)

    assert code == 0
    assert set(statuses(report).values()) == {"passed"}
    assert len(report["checks"]) == 5
    assert report["records_processed"] == orders_hourly.BATCH_ROWS
    assert report["records_failed"] == 1
    assert report["cpu_seconds"] > 0
    assert report["peak_memory_bytes"] > 0
    watermark = datetime.fromisoformat(report["data_watermark"])
    assert started - timedelta(hours=1) <= watermark <= datetime.now(UTC)

    database = tmp_path / "data" / "orders_hourly" / "warehouse.db"
    assert query(database, "SELECT count(*), min(amount_cents) > 0 FROM orders") == [(1199, 1)]
    assert query(database, "SELECT reason FROM orders_rejected") == [("amount must be positive: -12.50",)]
    assert (tmp_path / "data" / "orders_hourly" / "landing" / "orders_000001.csv").exists()


def test_orders_hourly_second_run_adds_its_own_batch(tmp_path: Path) -> None:
    run_job("orders_hourly", tmp_path / "data", tmp_path)
    code, report = run_job("orders_hourly", tmp_path / "data", tmp_path)

    assert code == 0
    assert report["extra"]["run_no"] == 2
    database = tmp_path / "data" / "orders_hourly" / "warehouse.db"
    assert query(database, "SELECT run_no, count(*) FROM orders GROUP BY run_no") == [(1, 1199), (2, 1199)]


def test_customers_daily_warns_about_missing_emails_and_keeps_the_newest_version(tmp_path: Path) -> None:
    code, report = run_job("customers_daily", tmp_path / "data", tmp_path)

    assert code == 0
    assert statuses(report) == {
        "customer_id_unique": "passed",
        "email_present": "warning",
        "country_code_valid": "passed",
        "row_count_stable": "passed",
    }
    assert report["records_processed"] == customers_daily.CUSTOMERS + customers_daily.DUPLICATES
    assert report["records_failed"] == 1
    database = tmp_path / "data" / "customers_daily" / "warehouse.db"
    # Stale duplicates carry an upper-case name: none of them may win over the newer version.
    assert query(database, "SELECT count(*) FROM dim_customers WHERE name = upper(name)") == [(0,)]
    (total,) = query(database, "SELECT count(*) FROM dim_customers")[0]
    assert customers_daily.CUSTOMERS - 1 <= total <= customers_daily.CUSTOMERS

    code, second = run_job("customers_daily", tmp_path / "data", tmp_path)
    assert code == 0
    row_count = next(check for check in second["checks"] if check["name"] == "row_count_stable")
    assert row_count["status"] == "passed"
    assert "previous load" in row_count["details"]


def test_clickstream_alternates_between_full_rescans_and_incremental_reads(tmp_path: Path) -> None:
    reports = [run_job("clickstream_sessions", tmp_path / "data", tmp_path)[1] for _ in range(3)]

    assert [report["extra"]["read_mode"] for report in reports] == [
        "full_rescan",
        "incremental",
        "full_rescan",
    ]
    assert [report["extra"]["pages"] for report in reports] == [16, 1, 16]
    assert [report["records_processed"] for report in reports] == [6400, 400, 6400]
    # The data is fine every time: only the amount of work (hence the runtime) swings.
    assert all(set(statuses(report).values()) == {"passed"} for report in reports)


def test_clickstream_with_a_kept_cursor_reads_incrementally_after_the_first_run(tmp_path: Path) -> None:
    reports = [
        run_job("clickstream_sessions", tmp_path / "data", tmp_path, CLICKSTREAM_FULL_RESCAN_EVERY="0")[1]
        for _ in range(3)
    ]

    assert [report["extra"]["read_mode"] for report in reports] == [
        "full_rescan",
        "incremental",
        "incremental",
    ]


def test_a_failed_check_fails_the_run_after_writing_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_PROMOTION_TERMINATION_LOG", str(tmp_path / "termination"))
    checks = _common.Checks()
    checks.expect("row_count", False, "0 rows")

    code = _common.finish(
        checks=checks, records_processed=0, records_failed=0, data_watermark=None, extra={"run_no": 1}
    )

    assert code == 1
    written = json.loads((tmp_path / "termination").read_text())
    assert written["checks"] == [{"name": "row_count", "status": "failed", "details": "0 rows"}]


def test_generated_source_data_depends_only_on_the_run_number() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    assert orders_hourly.generate_batch(3, now) == orders_hourly.generate_batch(3, now)
    assert orders_hourly.generate_batch(3, now) != orders_hourly.generate_batch(4, now)
    assert customers_daily.generate_export(2, now) == customers_daily.generate_export(2, now)
    batch = orders_hourly.generate_batch(3, now)
    assert sum(orders_hourly.validate(row) is not None for row in batch) == 1


def test_sessions_split_after_thirty_idle_minutes() -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    events = [
        {"event_id": str(i), "visitor_id": "v1", "url": "/", "event_at": (start + offset).isoformat()}
        for i, offset in enumerate([timedelta(0), timedelta(minutes=10), timedelta(minutes=41)])
    ]

    sessions = clickstream_sessions.sessionise(events)

    assert [(session[1], session[4]) for session in sessions] == [("v1", 2), ("v1", 1)]


def test_data_dir_defaults_under_the_temp_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(_common.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)

    assert _common.data_dir("orders_hourly") == tmp_path / "sla-promotion-examples" / "orders_hourly"


def test_every_example_job_runs_a_module_the_image_ships() -> None:
    dockerfile = (EXAMPLES / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(\S+)\s+\S+$", dockerfile, flags=re.MULTILINE)
    assert copied, "the Dockerfile copies nothing"
    for source in copied:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"

    jobs = sorted(JOBS.glob("*.yaml"))
    assert len(jobs) >= 3
    for path in jobs:
        job = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        assert job["cmds"][:2] == ["python", "-m"], path.name
        module = job["cmds"][2]
        assert module.startswith("sla_promotion_examples.")
        assert (EXAMPLES / (module.replace(".", "/") + ".py")).exists(), f"{path.name}: {module} is missing"
        assert module in dockerfile, f"the image build does not import {module}"
