"""The policy commands end to end: JSON answers, exit codes, and malformed input naming file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_sla_promotion.cli import main
from tests.unit.policy.factories import job_data, make_run, make_runs

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NOW = "2026-03-10T00:00:00Z"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith(("{", "[")) else out), err


def write_job(folder: Path, data: dict[str, Any] | None = None, name: str | None = None) -> Path:
    data = job_data() if data is None else data
    path = folder / f"{name or data.get('job_id', 'job')}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def write_json(folder: Path, name: str, data: Any) -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def runs_json(folder: Path, runs: list | None = None) -> Path:
    runs = make_runs(7) if runs is None else runs
    return write_json(folder, "runs.json", [run.model_dump(mode="json") for run in runs])


# --- answers ---------------------------------------------------------------------------------------------


def test_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, plan, _ = run_cli(capsys, "plan", str(write_job(tmp_path)), "--start", "2026-03-02T00:00:00Z")
    assert code == 0
    assert set(plan) == {
        "job_id",
        "draft_namespace",
        "test_frequency",
        "test_interval",
        "test_resources",
        "test_execution_days",
        "evaluation_dates",
        "promotion_criteria",
    }
    assert (plan["test_frequency"], plan["test_interval"]) == ("twice_daily", "PT12H")
    assert plan["test_resources"] == {"cpu_cores": 2.2, "memory_gb": 8.8, "estimated_runtime_minutes": 36}
    assert plan["evaluation_dates"][0] == "2026-03-03T00:00:00Z"


def test_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_json(tmp_path, "run.json", make_run().model_dump(mode="json"))
    code, answer, _ = run_cli(capsys, "score", str(write_job(tmp_path)), str(run))
    assert code == 0
    assert set(answer) == {
        "execution_id",
        "job_id",
        "evaluation_results",
        "overall_score",
        "promotion_eligible",
        "recommendations",
    }
    assert set(answer["evaluation_results"]) == {
        "runtime_performance",
        "resource_utilization",
        "data_quality",
        "error_rate",
        "sla_compliance",
    }
    for result in answer["evaluation_results"].values():
        assert {"score", "status"} <= set(result)


def test_sla(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = write_job(tmp_path, job_data(sla_requirements={"max_runtime": 30.0, "success_rate": 0.9}))
    code, report, _ = run_cli(capsys, "sla", str(job), str(runs_json(tmp_path)), "--now", NOW)
    assert code == 0
    assert set(report) == {"job_id", "compliance_results", "overall_compliance", "violations"}
    assert set(report["compliance_results"]) == {"max_runtime", "success_rate"}
    assert report["overall_compliance"] == 1.0


@pytest.mark.parametrize(
    ("job", "decision"), [("orders_ingest", "promote"), ("clickstream_ingest", "reject")]
)
def test_decide_the_examples(capsys: pytest.CaptureFixture[str], job: str, decision: str) -> None:
    code, answer, _ = run_cli(
        capsys,
        "decide",
        str(EXAMPLES / "jobs" / f"{job}.yaml"),
        str(EXAMPLES / "runs" / f"{job}.json"),
        "--now",
        NOW,
    )
    assert code == 0  # any decision is a successful answer
    assert {"job_id", "evaluation_data", "criteria_results", "promotion_decision"} <= set(answer)
    assert answer["promotion_decision"]["decision"] == decision
    assert set(answer["promotion_decision"]) == {
        "decision",
        "target_namespace",
        "resource_adjustments",
        "confidence",
        "failed_criteria",
        "recommendations",
        "message",
    }
    for criterion in (
        "min_successful_runs",
        "min_evaluation_period",
        "performance_variance",
        "sla_compliance",
        "overall_score",
    ):
        assert "passed" in answer["criteria_results"][criterion]


def test_decide_with_an_allowlist_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = write_job(tmp_path, job_data(promotion={"target_namespace": "analytics-prod"}))
    runs = runs_json(tmp_path)
    _, refused, _ = run_cli(capsys, "decide", str(job), str(runs), "--now", NOW)
    assert refused["promotion_decision"]["failed_criteria"] == ["target_namespace"]
    _, allowed, _ = run_cli(
        capsys,
        "decide",
        str(job),
        str(runs),
        "--now",
        NOW,
        "--allowed-target-namespaces",
        "prod-ingestion-ns, analytics-prod",
    )
    assert allowed["promotion_decision"]["target_namespace"] == "analytics-prod"


def test_an_empty_run_list_is_a_clear_reject(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, answer, _ = run_cli(
        capsys, "decide", str(write_job(tmp_path)), str(runs_json(tmp_path, [])), "--now", NOW
    )
    assert code == 0
    assert answer["promotion_decision"]["decision"] == "reject"
    assert "min_successful_runs" in answer["promotion_decision"]["failed_criteria"]
    assert answer["feedback_report"]["detailed_recommendations"]


def test_table_format_is_for_people(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "decide",
        str(write_job(tmp_path)),
        str(runs_json(tmp_path)),
        "--now",
        NOW,
        "--format",
        "table",
    )
    assert code == 0
    assert "PROMOTE" in out
    assert "min_successful_runs" in out
    code, out, _ = run_cli(capsys, "plan", str(write_job(tmp_path)), "--format", "table")
    assert "test_resources.cpu_cores" in out


@pytest.mark.parametrize("kind", ["job", "execution", "decision"])
def test_schema(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    code, schema, _ = run_cli(capsys, "schema", kind)
    assert code == 0
    assert schema["type"] == "object"
    assert "properties" in schema


def test_schema_of_the_job_forbids_unknown_keys(capsys: pytest.CaptureFixture[str]) -> None:
    _, schema, _ = run_cli(capsys, "schema")
    assert schema["additionalProperties"] is False
    assert "schedule_config" in schema["required"]


# --- malformed input: exit 2, file and field named, no traceback ----------------------------------------


def _broken(data: dict[str, Any], path: list[str]) -> dict[str, Any]:
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_broken(job_data(), ["resource_requirements"]), "resource_requirements"),
        (_broken(job_data(), ["resource_requirements", "memory_gb"]), "resource_requirements.memory_gb"),
        (job_data(colour="blue"), "colour"),
        (job_data(resource_requirements={"cpu_cores": "lots"}), "resource_requirements.cpu_cores"),
        (job_data(resource_requirements={"memory_gb": -2}), "resource_requirements.memory_gb"),
        (
            job_data(resource_requirements={"estimated_runtime_minutes": 0}),
            "resource_requirements.estimated_runtime_minutes",
        ),
        (job_data(schedule_config={"cron": "every morning"}), "schedule_config.cron"),
        (job_data(schedule_config={"cron": "0 0 30 2 *"}), "schedule_config.cron"),  # never fires
        (job_data(job_id="../../etc/passwd"), "job_id"),
        (job_data(job_id="orders__draft"), "job_id"),
        (job_data(promotion={"min_successful_runs": 1}), "promotion.min_successful_runs"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "decide", "validate"])
def test_invalid_job_files_exit_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any], field: str, command: str
) -> None:
    job = write_job(tmp_path, data, name="job")
    argv = {"plan": [str(job)], "decide": [str(job), str(runs_json(tmp_path, []))], "validate": [str(job)]}
    code, _, err = run_cli(capsys, command, *argv[command])
    assert code == 2
    assert f"{job}: {field}: " in err
    assert "Traceback" not in err


def test_every_problem_of_a_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = job_data(job_id="Bad Id", resource_requirements={"cpu_cores": 0}, extra_field=1)
    job = write_job(tmp_path, data, name="bad")
    code, _, err = run_cli(capsys, "plan", str(job))
    assert code == 2
    for field in ("job_id", "resource_requirements.cpu_cores", "extra_field"):
        assert f"{job}: {field}: " in err


@pytest.mark.parametrize(
    ("content", "field"),
    [("job_id: [unclosed", "<yaml>"), ("- a\n- list\n", "<root>"), ("", "<root>")],
)
def test_unreadable_yaml_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, field: str
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(content, encoding="utf-8")
    code, _, err = run_cli(capsys, "plan", str(job))
    assert code == 2
    assert f"{job}: {field}: " in err


def test_a_missing_job_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "plan", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml: <file>: " in err


def _run_dict(**changes: Any) -> dict[str, Any]:
    data = make_run().model_dump(mode="json")
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ([_run_dict(), _run_dict(execution_id="b", actual_runtime_minutes=-1)], "[1].actual_runtime_minutes"),
        ([_run_dict(status="running")], "[0].status"),
        ([_run_dict(created_at="2026-03-02T12:00:00")], "[0].created_at"),
        ([_run_dict(colour="blue")], "[0].colour"),
        ([{"execution_id": "x"}], "[0].job_id"),
        ([_run_dict(job_id="someone_else")], "[0].job_id"),
        ([_run_dict(), _run_dict()], "execution_id"),  # duplicate ids
        ({"not": "a list"}, "<root>"),
    ],
)
def test_invalid_run_histories_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, field: str
) -> None:
    runs = write_json(tmp_path, "runs.json", content)
    code, _, err = run_cli(capsys, "decide", str(write_job(tmp_path)), str(runs), "--now", NOW)
    assert code == 2
    assert f"{runs}: {field}: " in err


def test_invalid_json_and_single_run_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = str(write_job(tmp_path))
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    code, _, err = run_cli(capsys, "sla", job, str(broken))
    assert (code, f"{broken}: <json>: line 1" in err) == (2, True)
    runs = runs_json(tmp_path)
    code, _, err = run_cli(capsys, "score", job, str(runs))  # a list where one run is expected
    assert (code, f"{runs}: <root>: " in err) == (2, True)
    wrong = write_json(tmp_path, "run.json", _run_dict(records_failed=-1))
    code, _, err = run_cli(capsys, "score", job, str(wrong))
    assert (code, f"{wrong}: records_failed: " in err) == (2, True)


@pytest.mark.parametrize(("option", "value"), [("--now", "2026-03-10T00:00:00"), ("--now", "yesterday")])
def test_times_need_a_timezone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    code, _, err = run_cli(
        capsys, "decide", str(write_job(tmp_path)), str(runs_json(tmp_path)), option, value
    )
    assert code == 2
    assert err.startswith("sla-promotion: error: --now: ")


# --- validate ------------------------------------------------------------------------------------------


def test_validate_a_folder_reports_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_job(tmp_path, job_data(job_id="good_one"))
    write_job(tmp_path, job_data(job_id="other_name"), name="misnamed")  # stem must equal job_id
    write_job(tmp_path, job_data(job_id="broken", resource_requirements={"cpu_cores": -1}))
    (tmp_path / ".hidden.yaml").write_text("nonsense: [", encoding="utf-8")
    code, report, err = run_cli(capsys, "validate", str(tmp_path))
    assert code == 2
    assert report["valid"] is False
    by_name = {Path(entry["path"]).name: entry for entry in report["files"]}
    assert set(by_name) == {"good_one.yaml", "misnamed.yaml", "broken.yaml"}
    assert by_name["good_one.yaml"]["valid"] is True
    assert by_name["misnamed.yaml"]["errors"][0].startswith("job_id: ")
    assert by_name["broken.yaml"]["errors"][0].startswith("resource_requirements.cpu_cores: ")
    assert f"{tmp_path / 'broken.yaml'}: resource_requirements.cpu_cores: " in err


def test_validate_the_examples_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, report, err = run_cli(capsys, "validate", str(EXAMPLES / "jobs"))
    assert (code, report["valid"]) == (0, True)
    assert str(EXAMPLES) not in err
    assert len(report["files"]) == 2


def test_validate_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = run_cli(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert report["files"][0]["errors"] == ["<file>: no such file or folder"]


def test_relaxed_criteria_are_accepted_when_the_provider_allows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path, job_data(promotion={"min_successful_runs": 1, "min_evaluation_period_days": 0}))
    assert run_cli(capsys, "validate", str(job))[0] == 2
    monkeypatch.setenv("AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA", "True")
    code, _, _ = run_cli(capsys, "validate", str(job))
    assert code == 0
    _, answer, _ = run_cli(capsys, "decide", str(job), str(runs_json(tmp_path, make_runs(1))), "--now", NOW)
    assert answer["promotion_decision"]["decision"] == "promote"


def test_the_interim_demo_prints_one_promote_and_one_reject(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_sla_promotion.devtools import cli_demo

    assert cli_demo.main([]) == 0
    out = capsys.readouterr().out
    assert "job orders_ingest: PROMOTE" in out
    assert "job clickstream_ingest: REJECT" in out
    assert out.rstrip().splitlines()[-2:] == [
        f"{'clickstream_ingest':<30} reject",
        f"{'orders_ingest':<30} promote",
    ]


def test_plan_starts_at_the_draft_window_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(tmp_path, job_data(draft={"started_at": "2026-03-02T00:00:00Z"}))
    _, plan, _ = run_cli(capsys, "plan", str(job))
    assert plan["evaluation_dates"][0] == "2026-03-03T00:00:00Z"
    _, plan, _ = run_cli(capsys, "plan", str(job), "--start", "2026-04-01T00:00:00+02:00")
    assert plan["evaluation_dates"][0] == "2026-04-02T00:00:00+02:00"
