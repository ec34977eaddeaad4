"""A job's own usage and quality report, written to the pod's termination message (stdlib only)."""

# This file depends on nothing but the standard library so that a job image can vendor it as is:
# copy it next to the job's code and call ``report(...)`` as the job's last step. The format is
# described by ``job_report.schema.json`` beside this file, so a job written in any language can
# write the same JSON itself.

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "MAX_BYTES", "measure_usage", "render", "report"]

FORMAT_VERSION = 1
#: Kubernetes keeps at most 4096 bytes of a termination message.
MAX_BYTES = 4096
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "SLA_PROMOTION_TERMINATION_LOG"
USAGE_SOURCE_ENV = "SLA_PROMOTION_USAGE_SOURCE"
#: Where cgroup v2 is mounted; overridable so the cgroup reading can be tested outside a container.
CGROUP_ROOT_ENV = "SLA_PROMOTION_CGROUP_ROOT"
CHECK_STATUSES = ("passed", "failed", "warning")

# Fallback for the wall-time origin when /proc is not available: the moment this module was imported.
_IMPORTED_AT = time.time()


def _seconds_since_process_start() -> float:
    """Wall seconds since this process started.

    On Linux the kernel records a process's start in ``/proc/self/stat`` (field 22, clock ticks after
    boot) and the time since boot in ``/proc/uptime`` (hundredths of a second), which gives the true
    elapsed time including the interpreter's own start-up. Elsewhere the import time of this module is
    the origin.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        elapsed = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - _IMPORTED_AT
    return max(elapsed, time.time() - _IMPORTED_AT)


def _cgroup_v2_usage(root: Path) -> tuple[float, int] | None:
    """``(cpu_seconds, peak_memory_bytes)`` of the container's cgroup v2, or None when not available."""
    try:
        cpu_stat = (root / "cpu.stat").read_text()
        peak = int((root / "memory.peak").read_text().strip())
    except (OSError, ValueError):
        return None
    for line in cpu_stat.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1_000_000, peak
    return None


def _own_peak_bytes(maxrss_bytes: int) -> int:
    """This process's peak resident memory.

    On Linux ``VmHWM`` belongs to the current program image: ``ru_maxrss`` survives ``exec`` and so
    reports the parent's size when a large process forked the job (a scheduler, a test runner).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return maxrss_bytes


def _rusage_usage() -> tuple[float, int]:
    """``(cpu_seconds, peak_memory_bytes)`` of this process plus its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    # ru_maxrss is in KiB on Linux and in bytes on macOS; for children it is the largest child's peak.
    scale = 1 if sys.platform == "darwin" else 1024
    return cpu, max(_own_peak_bytes(own.ru_maxrss * scale), children.ru_maxrss * scale)


def measure_usage() -> dict[str, Any]:
    """CPU seconds, wall seconds and peak memory of this job so far, and where they came from.

    ``SLA_PROMOTION_USAGE_SOURCE=rusage`` forces ``getrusage``; otherwise the cgroup v2 files of the
    container are used when present, else ``getrusage``.
    """
    wall = max(_seconds_since_process_start(), 0.0)
    measured = None
    source = "rusage"
    if os.environ.get(USAGE_SOURCE_ENV, "").strip().lower() != "rusage":
        measured = _cgroup_v2_usage(Path(os.environ.get(CGROUP_ROOT_ENV) or "/sys/fs/cgroup"))
        if measured is not None:
            source = "cgroup2"
    if measured is None:
        measured = _rusage_usage()
    cpu, peak = measured
    return {
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "peak_memory_bytes": int(peak),
        "usage_source": source,
    }


def _clean_checks(checks: Any) -> list[dict[str, str]]:
    cleaned = []
    for index, check in enumerate(checks or []):
        if not isinstance(check, dict) or not isinstance(check.get("name"), str) or not check["name"]:
            raise ValueError(f"check #{index} needs a non-empty 'name': {check!r}")
        if check.get("status") not in CHECK_STATUSES:
            raise ValueError(f"check {check['name']!r}: status must be one of {CHECK_STATUSES}")
        entry = {"name": check["name"], "status": check["status"]}
        if check.get("details") is not None:
            entry["details"] = str(check["details"])
        cleaned.append(entry)
    return cleaned


def _watermark(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # A naive watermark is taken as UTC, the convention of every timestamp in this package.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    raise TypeError(f"data_watermark must be a datetime or an ISO 8601 string, not {type(value).__name__}")


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def render(payload: dict[str, Any], max_bytes: int = MAX_BYTES) -> bytes:
    """Encode ``payload`` in at most ``max_bytes``, shedding detail in a fixed order.

    First check details are shortened, then dropped; then ``extra`` is dropped; then trailing checks
    are dropped (their number is kept in ``checks_omitted``). Usage numbers, record counts and the
    watermark are never removed. Anything shed sets ``"truncated": true``.
    """
    data = _encode(payload)
    if len(data) <= max_bytes:
        return data
    payload = {**payload, "truncated": True, "checks": [dict(check) for check in payload.get("checks") or []]}
    for limit in (256, 64, 16, 0):
        for check in payload["checks"]:
            details = check.get("details")
            if details is None:
                continue
            if limit == 0:
                del check["details"]
            elif len(details) > limit:
                check["details"] = details[: limit - 1] + "\u2026"
        data = _encode(payload)
        if len(data) <= max_bytes:
            return data
    payload["extra"] = None
    data = _encode(payload)
    total = len(payload["checks"])
    while len(data) > max_bytes and payload["checks"]:
        payload["checks"].pop()
        payload["checks_omitted"] = total - len(payload["checks"])
        data = _encode(payload)
    if len(data) > max_bytes:
        raise ValueError(f"the report does not fit in {max_bytes} bytes even without checks and extra")
    return data


def report(
    checks: list[dict[str, Any]] | None = None,
    records_processed: int | None = None,
    records_failed: int | None = None,
    data_watermark: datetime | str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure this job's usage and write the report to the termination-message file.

    :param checks: data-quality check results, each ``{"name", "status": passed|failed|warning,
        "details"?}``.
    :param records_processed: records the run handled.
    :param records_failed: records the run could not handle.
    :param data_watermark: the newest point in time the produced data covers (for data freshness).
    :param extra: any JSON-safe detail the job wants to keep (dropped first if space runs out).
    :return: the report as written.

    The file is ``$SLA_PROMOTION_TERMINATION_LOG`` when set, else ``/dev/termination-log``. When the
    file cannot be written (a local run outside Kubernetes) a warning goes to stderr and the report
    is still returned.
    """
    payload: dict[str, Any] = {
        "v": FORMAT_VERSION,
        **measure_usage(),
        "checks": _clean_checks(checks),
        "records_processed": _count("records_processed", records_processed),
        "records_failed": _count("records_failed", records_failed),
        "data_watermark": _watermark(data_watermark),
        "extra": extra,
    }
    data = render(payload)
    path = os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as error:
        print(f"job_report: could not write the report to {path}: {error}", file=sys.stderr)
    written: dict[str, Any] = json.loads(data)
    return written


if __name__ == "__main__":
    # `python job_report.py` writes a usage-only report: handy as a container's last command.
    print(json.dumps(report()))
