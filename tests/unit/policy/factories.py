"""Builders of valid jobs and draft runs for policy tests; every value can be overridden."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_sla_promotion.spec import DraftExecution, IngestionJob

T0 = datetime(2026, 3, 2, tzinfo=UTC)

BASE_JOB: dict[str, Any] = {
    "job_id": "orders_ingest",
    "job_name": "Orders ingestion",
    "tenant": "sales",
    "image": "registry.example.com/orders:1",
    "schedule_config": {"cron": "0 2 * * *"},
    "resource_requirements": {"cpu_cores": 2.0, "memory_gb": 8.0, "estimated_runtime_minutes": 30.0},
}


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def job_data(**changes: Any) -> dict[str, Any]:
    """The job file's data: BASE_JOB deep-merged with ``changes``."""
    return _merge(BASE_JOB, changes)


def make_job(context: dict[str, Any] | None = None, **changes: Any) -> IngestionJob:
    return IngestionJob.model_validate(job_data(**changes), context=context)


def make_run(
    index: int = 0,
    *,
    status: str = "completed",
    runtime: float = 28.0,
    created_at: datetime | None = None,
    every: timedelta = timedelta(hours=12),
    job_id: str = "orders_ingest",
    **changes: Any,
) -> DraftExecution:
    """Draft run number ``index``: by default a healthy run, one every 12 hours from T0 + 12 h."""
    data: dict[str, Any] = {
        "execution_id": f"run-{index:03d}",
        "job_id": job_id,
        "status": status,
        "created_at": (created_at or T0 + every * (index + 1)).isoformat(),
        "actual_runtime_minutes": runtime,
        "allocated_resources": {"cpu_cores": 2.2, "memory_gb": 8.8},
        "resource_usage": {"avg_cpu_utilization": 1.7, "peak_memory_usage_gb": 6.8},
        "data_quality_results": {"checks": [{"name": "rows", "status": "passed"}]},
        "data_freshness_minutes": 20.0,
        "records_processed": 1000,
        "records_failed": 0,
        "try_number": 1,
    }
    data.update(changes)
    return DraftExecution.model_validate(data)


def make_runs(count: int, **changes: Any) -> list[DraftExecution]:
    return [make_run(index, **changes) for index in range(count)]
