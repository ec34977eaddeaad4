"""Worker-slot time DraftRunsSensor holds while it waits: deferrable, poke and reschedule modes.

``python -m benchmarks.sensor_cost MODE TEMPLATE_DB [WAIT_SECONDS]`` serves the real REST API v2 over a metadata
DB with a single successful draft run (see ``benchmarks.airflow_env``); ``WAIT_SECONDS`` (default 3)
after the sensor starts, the runs that meet the criteria appear. It measures, from behaviour, how
long the sensor occupied a worker slot until it returned:

- ``poke``: ``execute`` blocks, polling every ``poke_interval``: the slot is held from start to end.
- ``reschedule``: each ``execute`` pokes once and raises ``AirflowRescheduleException``; the slot is
  held during each poke only (the scheduler would re-queue the task; here the loop sleeps until the
  reschedule date).
- ``deferrable``: ``execute`` checks once and raises ``TaskDeferred``; the trigger then waits in the
  triggerer (an asyncio loop here, no worker slot); ``execute_complete`` runs on the event.

Prints ``{"mode", "wait_seconds", "elapsed_seconds", "slot_seconds", "worker_executions", "api_calls"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks import airflow_env

POKE_INTERVAL = 0.5


@dataclass
class SensorTaskInstance:
    """What the sensor's modes read of the task instance (no reschedule history: a fresh task)."""

    dag_id: str = "bench_promotion__promotion"
    task_id: str = "wait_for_draft_runs"
    run_id: str = "scheduled__2026-03-10T00:00:00+00:00"
    try_number: int = 1
    map_index: int = -1

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def run_mode(mode: str, job_path: Path) -> tuple[float, int, Any]:
    """Run the sensor to completion in ``mode``; return (slot seconds, worker executions, result)."""
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred

    from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor

    sensor = DraftRunsSensor(
        task_id="wait_for_draft_runs",
        job=str(job_path),
        deferrable=mode == "deferrable",
        mode="reschedule" if mode == "reschedule" else "poke",
        poke_interval=POKE_INTERVAL,
    )
    ti = SensorTaskInstance()
    context: dict[str, Any] = {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "task": sensor}
    slot = 0.0
    executions = 0
    while True:
        executions += 1
        started = time.perf_counter()
        try:
            result = sensor.execute(context)
        except AirflowRescheduleException as reschedule:
            slot += time.perf_counter() - started
            time.sleep(max(0.0, (reschedule.reschedule_date - datetime.now(UTC)).total_seconds()))
            continue
        except TaskDeferred as deferred:
            slot += time.perf_counter() - started
            event = asyncio.run(_first_event(deferred.trigger))
            executions += 1
            started = time.perf_counter()
            result = getattr(sensor, deferred.method_name)(context, event)
            slot += time.perf_counter() - started
            return slot, executions, result
        slot += time.perf_counter() - started
        return slot, executions, result


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise RuntimeError("the trigger ended without an event")


def main() -> None:
    mode = sys.argv[1]
    wait_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    if mode not in ("poke", "reschedule", "deferrable"):
        raise SystemExit(f"unknown mode {mode!r}")
    home = airflow_env.prepare_home(Path(sys.argv[2]))
    try:
        jobs = Path(tempfile.mkdtemp(prefix="jobs-", dir=home))
        job_path = jobs / f"{airflow_env.JOB_ID}.yaml"
        job_path.write_text(yaml.safe_dump(airflow_env.job_document(), sort_keys=False))
        with contextlib.contextmanager(airflow_env.serve_api)() as server:
            # Enough runs (3 successful over 3 days) appear wait_seconds after the sensor starts.
            timer = threading.Timer(wait_seconds, airflow_env.add_draft_runs, args=(6,))
            server.reset()
            started = time.perf_counter()
            timer.start()
            try:
                slot, executions, result = run_mode(mode, job_path)
            finally:
                timer.cancel()
                timer.join()
            elapsed = time.perf_counter() - started
            calls = sum(server.counts.values())
    finally:
        airflow_env.cleanup_home(home)
    status = result.get("status") if isinstance(result, dict) else None
    if status != "criteria_met":
        raise SystemExit(f"{mode}: the sensor returned {result!r}, expected criteria_met")
    print(
        json.dumps(
            {
                "mode": mode,
                "wait_seconds": wait_seconds,
                "elapsed_seconds": elapsed,
                "slot_seconds": slot,
                "worker_executions": executions,
                "api_calls": calls,
            }
        )
    )


if __name__ == "__main__":
    main()
