"""What the example jobs share: their data folder, run bookkeeping, the simulated source and the report."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

#: Root folder of the examples' landing files and SQLite warehouses (``/data`` in the image).
DATA_DIR_ENV = "SLA_PROMOTION_EXAMPLES_DATA_DIR"
#: Seconds one page of the simulated upstream source takes to arrive (stands in for network round trips).
PAGE_LATENCY_ENV = "SLA_PROMOTION_EXAMPLES_PAGE_LATENCY"
DEFAULT_PAGE_LATENCY = 0.25

log = logging.getLogger("sla_promotion_examples")


def data_dir(job: str) -> Path:
    """The job's own data folder: ``$SLA_PROMOTION_EXAMPLES_DATA_DIR/<job>``, else under the temp dir."""
    root = os.environ.get(DATA_DIR_ENV) or str(Path(tempfile.gettempdir()) / "sla-promotion-examples")
    folder = Path(root) / job
    (folder / "landing").mkdir(parents=True, exist_ok=True)
    return folder


def page_latency() -> float:
    value = os.environ.get(PAGE_LATENCY_ENV, "").strip()
    return float(value) if value else DEFAULT_PAGE_LATENCY


def fetch_pages(rows: Sequence[dict[str, Any]], page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Hand out ``rows`` page by page, each page after the source's latency, like a paged HTTP export."""
    latency = page_latency()
    for start in range(0, len(rows), page_size):
        if latency > 0:
            time.sleep(latency)
        yield list(rows[start : start + page_size])


def connect(database: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS load_log ("
        " run_no INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, mode TEXT,"
        " rows_read INTEGER, rows_loaded INTEGER, rows_rejected INTEGER, finished_at TEXT)"
    )
    return connection


def start_run(database: Path) -> int:
    """Record the start of a run; its number (1, 2, ...) drives the examples' deterministic behaviour."""
    with closing(connect(database)) as connection, connection:
        cursor = connection.execute(
            "INSERT INTO load_log (started_at) VALUES (?)", (datetime.now(UTC).isoformat(),)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def write_csv(path: Path, rows: Iterable[dict[str, Any]], fieldnames: Sequence[str]) -> Path:
    """Write a landing file atomically (a reader never sees half a file)."""
    partial = path.with_suffix(path.suffix + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@dataclass
class Checks:
    """Data-quality check results in the job report's format."""

    results: list[dict[str, str]] = field(default_factory=list)

    def add(self, name: str, status: str, details: str) -> None:
        self.results.append({"name": name, "status": status, "details": details})
        log.info("check %-24s %-8s %s", name, status, details)

    def expect(self, name: str, ok: bool, details: str) -> None:
        self.add(name, "passed" if ok else "failed", details)

    @property
    def failed(self) -> list[str]:
        return [check["name"] for check in self.results if check["status"] == "failed"]


def finish(
    *,
    checks: Checks,
    records_processed: int,
    records_failed: int,
    data_watermark: datetime | None,
    extra: dict[str, Any],
) -> int:
    """Write the job report (the pod's termination message) and return the process exit code.

    A failed data-quality check fails the run after the report is written, so the failure still
    carries its evidence.
    """
    from airflow_sla_promotion.job_report import report

    written = report(
        checks=checks.results,
        records_processed=records_processed,
        records_failed=records_failed,
        data_watermark=data_watermark,
        extra=extra,
    )
    log.info(
        "report: %s rows read, %s rejected, %.2f s wall, %.2f s CPU, peak %.0f MiB",
        records_processed,
        records_failed,
        written["wall_seconds"],
        written["cpu_seconds"],
        written["peak_memory_bytes"] / 2**20,
    )
    if checks.failed:
        log.error("failed checks: %s", ", ".join(checks.failed))
        return 1
    return 0


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
