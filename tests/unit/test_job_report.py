"""Tests of the job's usage report: measurement sources, the 4 KiB limit and the published schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest

from airflow_sla_promotion import job_report

SCHEMA = json.loads((Path(job_report.__file__).parent / "job_report.schema.json").read_text())


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv(job_report.TERMINATION_LOG_ENV, str(path))
    monkeypatch.setenv(job_report.USAGE_SOURCE_ENV, "rusage")
    return path


def test_report_writes_the_versioned_format_to_the_termination_log(termination_log: Path) -> None:
    watermark = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    returned = job_report.report(
        checks=[
            {"name": "not_null", "status": "passed"},
            {"name": "rows", "status": "warning", "details": "low"},
        ],
        records_processed=1000,
        records_failed=3,
        data_watermark=watermark,
        extra={"source": "s3"},
    )
    written = json.loads(termination_log.read_bytes())
    assert written == returned
    jsonschema.validate(written, SCHEMA)
    assert written["v"] == 1
    assert written["records_processed"] == 1000
    assert written["records_failed"] == 3
    assert datetime.fromisoformat(written["data_watermark"]) == watermark
    assert written["checks"][1] == {"name": "rows", "status": "warning", "details": "low"}
    assert written["extra"] == {"source": "s3"}
    assert written["usage_source"] == "rusage"
    assert written["cpu_seconds"] > 0
    assert written["peak_memory_bytes"] > 1024 * 1024
    assert "truncated" not in written


def test_nothing_reported_gives_nulls(termination_log: Path) -> None:
    written = job_report.report()
    jsonschema.validate(written, SCHEMA)
    assert written["checks"] == []
    assert written["records_processed"] is None
    assert written["data_watermark"] is None


def test_naive_watermark_is_taken_as_utc(termination_log: Path) -> None:
    written = job_report.report(data_watermark=datetime(2026, 5, 1, 12, 0))
    assert datetime.fromisoformat(written["data_watermark"]) == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"checks": [{"name": "x", "status": "ok"}]}, "status must be one of"),
        ({"checks": [{"status": "passed"}]}, "needs a non-empty 'name'"),
        ({"records_processed": -1}, "non-negative"),
        ({"records_failed": 1.5}, "non-negative"),
    ],
)
def test_invalid_input_is_refused(termination_log: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job_report.report(**kwargs)
    assert not termination_log.exists()


def test_check_details_are_truncated_before_anything_else(termination_log: Path) -> None:
    checks = [{"name": f"check_{i}", "status": "failed", "details": "d" * 2000} for i in range(5)]
    written = job_report.report(checks=checks, records_processed=7, records_failed=1, extra={"k": "v"})
    assert len(termination_log.read_bytes()) <= job_report.MAX_BYTES
    jsonschema.validate(written, SCHEMA)
    assert written["truncated"] is True
    assert [c["name"] for c in written["checks"]] == [f"check_{i}" for i in range(5)]
    assert all(len(c["details"]) <= 256 for c in written["checks"])
    assert written["extra"] == {"k": "v"}
    assert (written["records_processed"], written["records_failed"]) == (7, 1)


def test_many_checks_shed_extra_then_trailing_checks_but_keep_counts(termination_log: Path) -> None:
    checks = [{"name": f"a_rather_long_check_name_{i:04d}", "status": "passed"} for i in range(200)]
    written = job_report.report(checks=checks, records_processed=5, extra={"blob": "x" * 3000})
    data = termination_log.read_bytes()
    assert len(data) <= job_report.MAX_BYTES
    jsonschema.validate(written, SCHEMA)
    assert written["extra"] is None
    assert written["checks_omitted"] == 200 - len(written["checks"])
    assert written["checks"] == checks[: len(written["checks"])]
    assert written["records_processed"] == 5
    assert written["cpu_seconds"] is not None


def test_cgroup_v2_files_are_used_when_present(
    termination_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (cgroup / "memory.peak").write_text("123456789\n")
    monkeypatch.setenv(job_report.CGROUP_ROOT_ENV, str(cgroup))
    monkeypatch.delenv(job_report.USAGE_SOURCE_ENV)
    written = job_report.report()
    assert (written["cpu_seconds"], written["peak_memory_bytes"]) == (2.5, 123456789)
    assert written["usage_source"] == "cgroup2"

    monkeypatch.setenv(job_report.USAGE_SOURCE_ENV, "rusage")
    forced = job_report.report()
    assert forced["usage_source"] == "rusage"
    assert forced["peak_memory_bytes"] != 123456789


def test_missing_cgroup_files_fall_back_to_rusage(
    termination_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(job_report.CGROUP_ROOT_ENV, str(tmp_path / "absent"))
    monkeypatch.delenv(job_report.USAGE_SOURCE_ENV)
    assert job_report.report()["usage_source"] == "rusage"


def test_unwritable_path_warns_and_still_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv(job_report.TERMINATION_LOG_ENV, str(tmp_path / "missing-dir" / "log"))
    written = job_report.report(records_processed=1)
    assert written["records_processed"] == 1
    assert "could not write the report" in capsys.readouterr().err


def test_a_child_process_measures_its_own_cpu_and_wall_time(tmp_path: Path) -> None:
    # A fresh interpreter that sleeps then burns CPU: wall time includes the sleep, CPU time does not.
    log = tmp_path / "log"
    code = (
        "import time\n"
        "time.sleep(0.4)\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "from airflow_sla_promotion import job_report\n"
        "job_report.report()\n"
    )
    env = {"SLA_PROMOTION_TERMINATION_LOG": str(log), "SLA_PROMOTION_USAGE_SOURCE": "rusage", "PATH": ""}
    subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, cwd=Path(job_report.__file__).parents[1]
    )
    written = json.loads(log.read_text())
    assert written["wall_seconds"] >= 0.7
    assert 0.3 <= written["cpu_seconds"] < written["wall_seconds"] - 0.3


def test_peak_memory_is_the_jobs_own_not_inherited_through_exec(tmp_path: Path) -> None:
    # A big parent (here: 300 MB touched before exec) must not show up as the job's peak: ru_maxrss
    # survives exec on Linux, the job report reads the current image's high-water mark instead.
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    log = tmp_path / "termination.json"
    parent = (
        "import os, sys\n"
        "block = b'x' * (300 * 10**6)\n"
        "os.execv(sys.executable, [sys.executable, '-c', "
        "'from airflow_sla_promotion import job_report; job_report.report()'])\n"
    )
    env = {**os.environ, "SLA_PROMOTION_USAGE_SOURCE": "rusage", "SLA_PROMOTION_TERMINATION_LOG": str(log)}
    subprocess.run([sys.executable, "-c", parent], env=env, check=True)
    report = json.loads(log.read_text())
    assert report["peak_memory_bytes"] < 150e6
