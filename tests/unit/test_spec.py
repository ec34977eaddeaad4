"""The job file and run record models: what is accepted, what is refused and which field is named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from airflow_sla_promotion.spec import ALLOW_RELAXED_CRITERIA, DraftExecution, IngestionJob, PromotionCriteria
from tests.unit.policy.factories import job_data, make_run


def _error_locations(data: dict[str, Any], context: dict[str, Any] | None = None) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        IngestionJob.model_validate(data, context=context)
    return {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}


def test_a_minimal_job_is_valid_with_defaults() -> None:
    job = IngestionJob.model_validate(job_data())
    assert job.status == "draft"
    assert job.criteria() == PromotionCriteria()
    assert job.sla_requirements.declared() == {}


@pytest.mark.parametrize(
    ("override", "value"),
    [
        ("min_successful_runs", 5),
        ("min_evaluation_period_days", 4),
        ("min_overall_score", 0.9),
        ("max_performance_variance", 0.2),
        ("min_sla_compliance", 0.95),
        ("min_successful_runs", 3),  # equal to the default is not a relaxation
    ],
)
def test_overrides_that_tighten_are_accepted(override: str, value: float) -> None:
    job = IngestionJob.model_validate(job_data(promotion={override: value}))
    assert getattr(job.criteria(), override) == value


@pytest.mark.parametrize(
    ("override", "value"),
    [
        ("min_successful_runs", 2),
        ("min_evaluation_period_days", 0),
        ("min_overall_score", 0.7),
        ("max_performance_variance", 0.5),
        ("min_sla_compliance", 0.5),
    ],
)
def test_overrides_that_relax_are_refused_unless_allowed(override: str, value: float) -> None:
    assert _error_locations(job_data(promotion={override: value})) == {f"promotion.{override}"}
    allowed = IngestionJob.model_validate(
        job_data(promotion={override: value}), context={ALLOW_RELAXED_CRITERIA: True}
    )
    assert getattr(allowed.criteria(), override) == value


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"job_id": "../etc/passwd"}, "job_id"),
        ({"job_id": "orders/ingest"}, "job_id"),
        ({"job_id": "orders__ingest"}, "job_id"),
        ({"job_id": "Orders"}, "job_id"),
        ({"job_id": "x" * 64}, "job_id"),
        ({"job_id": "-orders"}, "job_id"),
        (
            {"resource_requirements": {"estimated_runtime_minutes": 0}},
            "resource_requirements.estimated_runtime_minutes",
        ),
        ({"resource_requirements": {"cpu_cores": -1}}, "resource_requirements.cpu_cores"),
        ({"resource_requirements": {"memory_gb": "lots"}}, "resource_requirements.memory_gb"),
        ({"schedule_config": {"cron": "every day"}}, "schedule_config.cron"),
        ({"schedule_config": {"cron": "0 2 * *"}}, "schedule_config.cron"),
        ({"sla_requirements": {"success_rate": 1.5}}, "sla_requirements.success_rate"),
        ({"sla_requirements": {"max_runtime": -5}}, "sla_requirements.max_runtime"),
        ({"promotion": {"target_namespace": "Prod_NS"}}, "promotion.target_namespace"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"resource_requirements": {"gpus": 1}}, "resource_requirements.gpus"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"status": "live"}, "status"),
    ],
)
def test_invalid_jobs_name_the_field(changes: dict[str, Any], location: str) -> None:
    assert location in _error_locations(job_data(**changes))


def test_a_missing_field_is_named() -> None:
    data = job_data()
    del data["resource_requirements"]
    assert _error_locations(data) == {"resource_requirements"}


def test_valid_job_ids() -> None:
    for job_id in ("orders", "orders_ingest", "orders-ingest-2", "a" * 63):
        assert IngestionJob.model_validate(job_data(job_id=job_id)).job_id == job_id


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"actual_runtime_minutes": -1}, "actual_runtime_minutes"),
        ({"status": "running"}, "status"),
        ({"created_at": "2026-03-02T12:00:00"}, "created_at"),  # no timezone
        ({"allocated_resources": {"cpu_cores": 0, "memory_gb": 1}}, "allocated_resources.cpu_cores"),
        ({"data_quality_score": 1.5}, "data_quality_score"),
        ({"records_failed": -3}, "records_failed"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_runs_name_the_field(changes: dict[str, Any], location: str) -> None:
    data = make_run().model_dump(mode="json")
    data.update(changes)
    with pytest.raises(ValidationError) as caught:
        DraftExecution.model_validate(data)
    assert location in {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}
