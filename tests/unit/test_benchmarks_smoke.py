"""The benchmark cases still run and compare like with like (tiny sizes, nothing timed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from benchmarks import airflow_env, dag_parse, policy_throughput
from benchmarks.harness import Measure, median, run_case
from benchmarks.run import Section, render

if TYPE_CHECKING:
    from pathlib import Path


def _pods(dags: dict[str, object]) -> dict[tuple[str, str], tuple[object, ...]]:
    shape = {}
    for dag_id, dag in dags.items():
        for task in dag.tasks:  # type: ignore[attr-defined]
            resources = getattr(task, "container_resources", None)
            shape[(dag_id, task.task_id)] = (
                type(task).__name__ if not hasattr(task, "namespace") else "pod",
                getattr(task, "namespace", None),
                getattr(task, "image", None),
                getattr(task, "cmds", None),
                getattr(task, "arguments", None),
                None if resources is None else (resources.requests, resources.limits),
                str(dag.timetable),  # type: ignore[attr-defined]
            )
    return shape


def test_hand_written_baseline_builds_the_dags_and_pods_the_factory_builds(tmp_path: Path) -> None:
    from airflow_sla_promotion.config import ProviderSettings
    from airflow_sla_promotion.dag_factory import build_dags

    dag_parse.write_jobs(tmp_path, 8)
    factory = build_dags(tmp_path, settings=ProviderSettings())
    hand_written = dag_parse.handwritten_dags(tmp_path)

    assert sorted(factory) == sorted(hand_written)
    assert len(factory) == 12  # 4 draft jobs x 2 DAGs + 4 active jobs x 1 DAG
    assert _pods(hand_written) == _pods(factory)


def test_dag_factory_configs_describe_the_same_dags(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    documents = dag_parse.write_jobs(jobs, 4)
    configs = tmp_path / "configs"
    configs.mkdir()
    dag_parse.write_dagfactory_configs(configs, jobs, documents)

    import yaml

    dag_ids = {dag_id for path in configs.glob("*.yml") for dag_id in yaml.safe_load(path.read_text())}
    assert dag_ids == set(dag_parse.handwritten_dags(jobs))


def test_policy_case_prints_its_result_line() -> None:
    result = run_case("benchmarks.policy_throughput", "end_to_end", "300")
    assert result["mode"] == "end_to_end"
    assert result["runs"] == 300
    assert result["seconds"] > 0


def test_policy_payload_parses_and_decides() -> None:
    runs = policy_throughput.RUNS.validate_json(policy_throughput.make_runs_json(200))
    assert len(runs) == 200
    assert {run.status for run in runs} <= {"completed", "failed"}
    policy_throughput.decide(runs)


def test_median_of_each_numeric_field() -> None:
    result = median(
        [
            {"mode": "a", "seconds": 3.0, "ok": True},
            {"mode": "b", "seconds": 1.0, "ok": False},
            {"mode": "c", "seconds": 2.0, "ok": True},
        ]
    )
    assert result["seconds"] == 2.0
    assert result["mode"] == "a"
    assert result["ok"] is True
    assert result["repeats"] == 3


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/auth/token", "login"),
        ("POST", "/api/v2/dags/~/dagRuns/list", "dag_runs_list"),
        ("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", "task_instances_list"),
        ("GET", "/api/v2/dags/d/dagRuns/r/taskInstances/t/xcomEntries/draft_execution", "xcom"),
        ("PATCH", "/api/v2/dags/d", "dag_patch"),
        ("GET", "/api/v2/version", "GET /api/v2/version"),
    ],
)
def test_server_side_request_kinds(method: str, path: str, kind: str) -> None:
    assert airflow_env.request_kind(method, path) == kind


def test_report_lists_every_missed_goal() -> None:
    sections = [
        Section(1, "One", Measure("One", "1.5x", "<= 1.2x", "baseline", met=False), ["detail"]),
        Section(2, "Two", Measure("Two", "4 calls", "<= 4 calls", "allowance", met=True), ["detail"]),
    ]
    text = render(sections, datetime(2026, 1, 1, tzinfo=UTC), 60.0, ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)))
    summary = [line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert summary[0].endswith("| no |")
    assert summary[1].endswith("| yes |")
    missed = text.split("## Goals not met, and why", 1)[1]
    assert "One: 1.5x" in missed
    assert "Two" not in missed
    assert "make bench" in text
