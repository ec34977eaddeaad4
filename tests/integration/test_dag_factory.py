"""The DAG factory through a real DagBag: the example jobs' DAGs in every status, and broken job files."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_sla_promotion import dag_factory
from airflow_sla_promotion.config import ProviderSettings
from airflow_sla_promotion.spec import IngestionJob, SLARequirements

if TYPE_CHECKING:
    from airflow.sdk import DAG

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILE = DAGS / "sla_promotion_jobs.py"
EXAMPLE_JOBS = sorted(path.stem for path in (DAGS / "jobs").glob("*.yaml"))
RELAXED = "AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA"
JOBS_FOLDER = "AIRFLOW__SLA_PROMOTION__JOBS_FOLDER"

#: What each example is: its test interval (from its production cron) and its production cron.
EXPECTED = {
    "orders_hourly": {"interval": timedelta(hours=4), "cron": "5 * * * *", "tenant": "sales"},
    "customers_daily": {"interval": timedelta(hours=12), "cron": "30 2 * * *", "tenant": "crm"},
    "clickstream_sessions": {
        "interval": timedelta(hours=4),
        "cron": "*/30 * * * *",
        "tenant": "web-analytics",
    },
}


def dag_bag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def serialize(dag: DAG) -> dict[str, Any]:
    """What the DAG processor stores; a DAG that does not serialize would never reach the scheduler."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.to_dict(dag)


def load_example(job_id: str) -> dict[str, Any]:
    return yaml.load((DAGS / "jobs" / f"{job_id}.yaml").read_text(), Loader=yaml.CSafeLoader)


def write_job(folder: Path, data: dict[str, Any], name: str | None = None) -> Path:
    path = folder / f"{name or data['job_id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def dag_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGs folder holding the example DAG file, with an empty jobs folder configured for it."""
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(DAG_FILE, folder / DAG_FILE.name)
    (tmp_path / "jobs").mkdir()
    monkeypatch.setenv(JOBS_FOLDER, str(tmp_path / "jobs"))
    monkeypatch.setenv(RELAXED, "True")
    return folder


def draft_task_resources(task: Any) -> dict[str, Any]:
    resources = task.container_resources
    return {"requests": dict(resources.requests or {}), "limits": dict(resources.limits or {})}


# --- the example DAG file as shipped ------------------------------------------------------------------


def test_example_dag_file_builds_draft_and_promotion_dags_for_every_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RELAXED, "True")
    monkeypatch.delenv(JOBS_FOLDER, raising=False)

    bag = dag_bag(DAGS)

    assert not bag.import_errors, bag.import_errors
    assert len(EXAMPLE_JOBS) >= 3
    assert set(bag.dags) == {
        dag_id for job in EXAMPLE_JOBS for dag_id in (f"{job}__draft", f"{job}__promotion")
    }
    for job_id in EXAMPLE_JOBS:
        expected = EXPECTED[job_id]
        draft = bag.dags[f"{job_id}__draft"]
        assert type(draft.timetable).__name__ == "DeltaTriggerTimetable"
        assert draft.timetable.delta == expected["interval"]
        assert draft.start_date == dag_factory.FALLBACK_START_DATE
        assert draft.end_date is None
        assert draft.catchup is False
        assert draft.max_active_runs == 1
        assert set(draft.tags) == {"sla-promotion", f"tenant:{expected['tenant']}", "phase:draft"}
        assert list(draft.task_dict) == ["draft_run"]
        task = draft.task_dict["draft_run"]
        assert task.owner == load_example(job_id)["owner"]
        assert task.namespace == "draft-ingestion-ns"
        # Every example estimates less than 1 core / 2 GiB: the draft runs get the floors.
        assert draft_task_resources(task) == {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"memory": "2Gi"},
        }

        promotion = bag.dags[f"{job_id}__promotion"]
        assert promotion.timetable.delta == timedelta(days=1)
        assert set(promotion.tags) == {"sla-promotion", f"tenant:{expected['tenant']}", "phase:promotion"}
        assert promotion.task_dict["wait_for_draft_runs"].downstream_task_ids == {"promote"}
        assert promotion.task_dict["promote"].draft_dag_id == f"{job_id}__draft"
        # The promotion rewrites the very file the DAGs were built from.
        assert promotion.task_dict["promote"].jobs_folder == str(DAGS / "jobs")
        for dag in (draft, promotion):
            assert dag.fileloc == str(DAG_FILE)
            assert serialize(dag)


def test_example_jobs_relax_criteria_so_they_need_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELAXED, raising=False)
    monkeypatch.delenv(JOBS_FOLDER, raising=False)

    bag = dag_bag(DAGS)

    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == {f"{job}__invalid" for job in EXAMPLE_JOBS}
    for job_id in EXAMPLE_JOBS:
        placeholder = bag.dags[f"{job_id}__invalid"]
        assert placeholder.description.startswith(f"Invalid job file: {job_id}.yaml: ")
        assert "promotion.min_evaluation_period_days" in placeholder.description
        assert "allow_relaxed_criteria" in placeholder.doc_md
        assert placeholder.task_dict == {}
        assert type(placeholder.timetable).__name__ == "NullTimetable"
        assert serialize(placeholder)


# --- every status of every example --------------------------------------------------------------------

PROMOTED_AT = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)


def as_active(data: dict[str, Any]) -> dict[str, Any]:
    """The example as the workflow leaves it after a promotion (right-sized resources)."""
    return {
        **data,
        "status": "active",
        "namespace": "prod-ingestion-ns",
        "promoted_at": PROMOTED_AT.isoformat(),
        "resource_requirements": {"cpu_cores": 0.25, "memory_gb": 0.125, "estimated_runtime_minutes": 1},
        "draft": {"started_at": "2026-03-01T08:00:00+00:00", "window_ends_at": "2026-03-08T08:00:00+00:00"},
        "promotion_history": [
            {
                "at": PROMOTED_AT.isoformat(),
                "action": "promote",
                "actor": "airflow",
                "reason": "met all promotion criteria",
                "from_status": "draft",
                "to_status": "active",
            }
        ],
    }


def as_rejected(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "status": "promotion_rejected",
        "promotion_feedback": {"failed_criteria": ["performance_variance"]},
    }


@pytest.mark.parametrize("job_id", sorted(EXPECTED))
def test_each_example_in_each_status(job_id: str, dag_folder: Path) -> None:
    jobs = dag_folder.parent / "jobs"
    example = load_example(job_id)
    write_job(jobs, {**example, "job_id": f"{job_id}-draft"}, f"{job_id}-draft")
    write_job(jobs, {**as_active(example), "job_id": f"{job_id}-active"}, f"{job_id}-active")
    write_job(jobs, {**as_rejected(example), "job_id": f"{job_id}-rejected"}, f"{job_id}-rejected")

    bag = dag_bag(dag_folder)

    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == {f"{job_id}-draft__draft", f"{job_id}-draft__promotion", f"{job_id}-active"}
    expected = EXPECTED[job_id]

    draft = bag.dags[f"{job_id}-draft__draft"]
    assert draft.timetable.delta == expected["interval"]
    assert draft.task_dict["draft_run"].namespace == "draft-ingestion-ns"
    assert bag.dags[f"{job_id}-draft__promotion"].task_dict["promote"].jobs_folder == str(jobs)

    production = bag.dags[f"{job_id}-active"]
    assert type(production.timetable).__name__ == "CronTriggerTimetable"
    assert production.timetable.expression == expected["cron"]
    assert production.start_date == PROMOTED_AT
    assert production.is_paused_upon_creation is False
    assert production.catchup is False
    assert set(production.tags) == {"sla-promotion", f"tenant:{expected['tenant']}", "phase:production"}
    assert list(production.task_dict) == ["run"]
    run = production.task_dict["run"]
    assert run.namespace == "prod-ingestion-ns"
    # The job's own (adjusted) resources, not the draft's +10 % with floors.
    assert draft_task_resources(run)["requests"] == {"cpu": "250m", "memory": "128Mi"}
    assert "`active`" in production.doc_md
    assert f'"job_id": "{job_id}-active"' in production.doc_md
    assert "`promote` by airflow" in production.doc_md
    (deadline,) = production.deadline
    assert deadline.interval == timedelta(minutes=example["sla_requirements"]["max_runtime"])
    assert deadline.callback.path == "airflow_sla_promotion.dag_factory.runtime_deadline_missed"
    assert serialize(production)


# --- the draft window ---------------------------------------------------------------------------------


def test_a_written_draft_window_bounds_the_draft_and_promotion_dags(dag_folder: Path) -> None:
    jobs = dag_folder.parent / "jobs"
    started = datetime(2026, 3, 1, 8, tzinfo=UTC)
    extended_to = started + timedelta(days=9)
    write_job(
        jobs,
        {
            **load_example("customers_daily"),
            "draft": {
                "started_at": started.isoformat(),
                "window_ends_at": extended_to.isoformat(),
                "extensions": [
                    {
                        "extended_at": (started + timedelta(days=7)).isoformat(),
                        "previous_window_ends_at": (started + timedelta(days=7)).isoformat(),
                        "window_ends_at": extended_to.isoformat(),
                        "reason": "too few successful runs",
                    }
                ],
            },
        },
    )

    bag = dag_bag(dag_folder)

    draft = bag.dags["customers_daily__draft"]
    assert (draft.start_date, draft.end_date) == (started, extended_to)
    promotion = bag.dags["customers_daily__promotion"]
    # Daily from the plan's first evaluation date (a day in) over the extended window.
    assert (promotion.start_date, promotion.end_date) == (started + timedelta(days=1), extended_to)
    assert promotion.timetable.delta == timedelta(days=1)
    assert serialize(promotion)


def test_a_draft_window_without_an_end_gets_the_plan_length(dag_folder: Path) -> None:
    jobs = dag_folder.parent / "jobs"
    started = datetime(2026, 3, 1, 8, tzinfo=UTC)
    write_job(jobs, {**load_example("orders_hourly"), "draft": {"started_at": started.isoformat()}})

    bag = dag_bag(dag_folder)

    assert bag.dags["orders_hourly__draft"].end_date == started + timedelta(days=7)
    assert bag.dags["orders_hourly__promotion"].end_date == started + timedelta(days=7)


# --- broken job files ---------------------------------------------------------------------------------


def test_broken_job_files_become_placeholders_and_hide_nothing(
    dag_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RELAXED)
    jobs = dag_folder.parent / "jobs"
    strict = {key: value for key, value in load_example("orders_hourly").items() if key != "promotion"}
    write_job(jobs, {**strict, "job_id": "payments"})
    write_job(jobs, {**strict, "job_id": "refunds", "status": "active", "namespace": "prod-ingestion-ns"})
    (jobs / "bad-yaml.yaml").write_text("job_id: bad-yaml\nschedule_config: [unclosed\n")
    typo = {key: value for key, value in strict.items() if key != "resource_requirements"}
    write_job(jobs, {**typo, "job_id": "typo", "resource_requirement": strict["resource_requirements"]})
    write_job(jobs, {**strict, "job_id": "relaxed", "promotion": {"min_successful_runs": 1}})
    # Two files declaring the same job_id: both are errors.
    write_job(jobs, strict)
    write_job(jobs, strict, "orders-copy")
    (jobs / ".payments.yaml.lock").write_text("")  # hidden files are not job files

    bag = dag_bag(dag_folder)

    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == {
        "payments__draft",
        "payments__promotion",
        "refunds",
        "bad-yaml__invalid",
        "typo__invalid",
        "relaxed__invalid",
        "orders_hourly__invalid",
        "orders-copy__invalid",
    }
    problems = {
        "bad-yaml__invalid": ("<yaml>", "line 3, column 1: did not find expected ',' or ']'"),
        "typo__invalid": ("resource_requirement", "Extra inputs are not permitted"),
        "relaxed__invalid": ("promotion.min_successful_runs", "relaxes the provider's criterion"),
        "orders_hourly__invalid": ("job_id", "duplicate job_id 'orders_hourly' (also in orders-copy.yaml)"),
        "orders-copy__invalid": ("job_id", "duplicate job_id 'orders_hourly' (also in orders_hourly.yaml)"),
    }
    for dag_id, (field, message) in problems.items():
        placeholder = bag.dags[dag_id]
        stem = dag_id.removesuffix("__invalid")
        assert placeholder.description.startswith(f"Invalid job file: {stem}.yaml: {field}: ")
        assert message in placeholder.description
        assert f"`{jobs / (stem + '.yaml')}` | `{field}` |" in placeholder.doc_md
        assert placeholder.is_paused_upon_creation is True
        assert set(placeholder.tags) == {"sla-promotion", "phase:invalid"}
        assert serialize(placeholder)
    # One placeholder per file lists every problem of it: the typo'd file also lacks the real key,
    # the copy's name also differs from its job_id.
    assert "`resource_requirements` | Field required" in bag.dags["typo__invalid"].doc_md
    assert "must equal the file name stem" in bag.dags["orders-copy__invalid"].doc_md


def test_a_job_whose_dags_cannot_be_built_becomes_a_placeholder(dag_folder: Path) -> None:
    jobs = dag_folder.parent / "jobs"
    write_job(jobs, as_active(load_example("orders_hourly")) | {"namespace": None})
    write_job(jobs, {**load_example("customers_daily")})

    bag = dag_bag(dag_folder)

    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == {"orders_hourly__invalid", "customers_daily__draft", "customers_daily__promotion"}
    description = bag.dags["orders_hourly__invalid"].description
    assert description.startswith("Invalid job file: orders_hourly.yaml: <dag>: cannot build its DAGs: ")
    assert "has no namespace" in description


def test_a_missing_jobs_folder_is_reported_not_raised(
    dag_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(JOBS_FOLDER, str(tmp_path / "no-such-folder"))

    bag = dag_bag(dag_folder)

    assert not bag.import_errors
    assert set(bag.dags) == {"no-such-folder__invalid"}
    assert "does not exist" in bag.dags["no-such-folder__invalid"].description


# --- parse-time discipline ----------------------------------------------------------------------------


def test_dag_shapes_do_not_depend_on_when_they_are_parsed(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for job_id in EXPECTED:
        write_job(jobs, load_example(job_id))
    write_job(jobs, {**as_active(load_example("orders_hourly")), "job_id": "orders-live"}, "orders-live")
    settings = ProviderSettings(allow_relaxed_criteria=True)

    first = {
        dag_id: serialize(dag) for dag_id, dag in dag_factory.build_dags(jobs, settings=settings).items()
    }
    second = {
        dag_id: serialize(dag) for dag_id, dag in dag_factory.build_dags(jobs, settings=settings).items()
    }

    assert first == second
    assert len(first) == 7


def test_invalid_dag_id_keeps_only_characters_a_dag_id_may_hold() -> None:
    assert dag_factory.invalid_dag_id(Path("/jobs/my job (copy).yaml")) == "my_job_copy___invalid"
    assert dag_factory.invalid_dag_id(Path("/jobs/orders.yaml")) == "orders__invalid"


def test_dag_docs_show_the_spec_but_not_environment_values(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    example = load_example("clickstream_sessions")
    write_job(jobs, {**example, "env": {**example["env"], "SOURCE_TOKEN": "s3cr3t-value"}})

    dags = dag_factory.build_dags(jobs, settings=ProviderSettings(allow_relaxed_criteria=True))

    for dag_id in ("clickstream_sessions__draft", "clickstream_sessions__promotion"):
        doc = dags[dag_id].doc_md
        assert "s3cr3t-value" not in doc
        assert '"SOURCE_TOKEN": "***"' in doc
        assert '"cron": "*/30 * * * *"' in doc
        assert "| test frequency | every_4_hours (`PT4H`) |" in doc


def test_pod_kwargs_reach_the_run_tasks_and_the_cleanup(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    write_job(jobs, load_example("orders_hourly"))
    write_job(jobs, {**as_active(load_example("customers_daily"))})
    settings = ProviderSettings(allow_relaxed_criteria=True)

    dags = dag_factory.build_dags(
        jobs,
        settings=settings,
        pod_kwargs={"kubernetes_conn_id": "k8s_ingest", "startup_timeout_seconds": 60},
    )

    for dag_id, task_id in (("orders_hourly__draft", "draft_run"), ("customers_daily", "run")):
        task = dags[dag_id].task_dict[task_id]
        assert (task.kubernetes_conn_id, task.startup_timeout_seconds) == ("k8s_ingest", 60)
    assert dags["orders_hourly__promotion"].task_dict["promote"].kubernetes_conn_id == "k8s_ingest"
    with pytest.raises(ValueError, match="pod_kwargs may not set"):
        dag_factory.build_dags(jobs, settings=settings, pod_kwargs={"task_id": "other"})


async def test_the_runtime_deadline_callback_runs_as_the_triggerer_runs_it() -> None:
    from airflow.triggers.callback import CallbackTrigger

    job = IngestionJob.model_validate(
        as_active(load_example("orders_hourly")), context={"allow_relaxed_criteria": True}
    )
    deadline = dag_factory.runtime_deadline(job)
    trigger = CallbackTrigger(
        callback_path=deadline.callback.path,
        callback_kwargs={**deadline.callback.kwargs, "context": {"dag_run": {"run_id": "scheduled__1"}}},
    )

    events = [event.payload async for event in trigger.run()]

    assert events[-1] == {
        "state": "success",
        "body": {
            "job_id": "orders_hourly",
            "run_id": "scheduled__1",
            "sla": "max_runtime",
            "max_runtime_minutes": 10.0,
        },
    }
    assert (
        dag_factory.runtime_deadline(job.model_copy(update={"sla_requirements": SLARequirements()})) is None
    )
