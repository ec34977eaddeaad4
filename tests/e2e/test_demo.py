"""The demo driver's own steps: preparing ``.demo/``, the busy-port error, the summary and the config diff."""

from __future__ import annotations

import io
import socket
from typing import TYPE_CHECKING

import pytest

from airflow_sla_promotion.devtools.demo import Demo
from airflow_sla_promotion.devtools.stack import JobOutcome, StackError, free_port

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "dags" / "jobs").mkdir(parents=True)
    (root / "dags" / "sla_promotion_jobs.py").write_text('"""DAG file."""\n')
    (root / "dags" / "jobs" / "alpha.yaml").write_text("job_id: alpha\nstatus: draft\n")
    (root / "dags" / "jobs" / "beta.yaml").write_text("job_id: beta\nstatus: draft\n")
    (root / "dags" / "jobs" / ".hidden.yaml").write_text("ignored: true\n")
    return root


def _demo(repo: Path, port: int | None = None) -> Demo:
    return Demo(repo_root=repo, api_port=port or free_port(), out=io.StringIO())


def test_prepare_copies_jobs_and_leaves_tracked_files_alone(repo: Path) -> None:
    demo = _demo(repo)
    job_ids = demo.prepare()
    assert job_ids == ["alpha", "beta"]
    assert demo.demo_dir == repo / ".demo"
    assert sorted(path.name for path in demo.jobs_dir.iterdir()) == ["alpha.yaml", "beta.yaml"]
    assert (demo.dags_dir / "sla_promotion_jobs.py").is_file()
    (demo.jobs_dir / "alpha.yaml").write_text("job_id: alpha\nstatus: active\n")
    assert (repo / "dags" / "jobs" / "alpha.yaml").read_text() == "job_id: alpha\nstatus: draft\n"


def test_prepare_refuses_a_busy_port_with_a_hint(repo: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} .* busy.*DEMO_API_PORT={port + 1}"):
            _demo(repo, port).prepare()
    assert not (repo / ".demo").exists()


def test_diff_shows_the_rewrite_against_the_tracked_original(repo: Path) -> None:
    demo = _demo(repo)
    demo.prepare()
    (demo.jobs_dir / "alpha.yaml").write_text("job_id: alpha\nstatus: active\nnamespace: prod-ingestion-ns\n")
    alpha, beta = demo.diffs(["alpha", "beta"])
    assert "--- dags/jobs/alpha.yaml" in alpha
    assert "+++ .demo/jobs/alpha.yaml" in alpha
    assert "-status: draft" in alpha
    assert "+status: active" in alpha
    assert "+namespace: prod-ingestion-ns" in alpha
    assert beta == "(dags/jobs/beta.yaml unchanged)\n"


def test_summary_and_reports(repo: Path) -> None:
    demo = _demo(repo)
    demo.prepare()
    outcomes = {
        "alpha": JobOutcome(
            "alpha",
            promotion_state="success",
            report={
                "outcome": {"status": "promoted"},
                "promotion_decision": {"failed_criteria": [], "target_namespace": "prod-ingestion-ns"},
            },
        ),
        "beta": JobOutcome(
            "beta",
            promotion_state="success",
            report={
                "outcome": {"status": "rejected"},
                "promotion_decision": {"failed_criteria": ["performance_variance"], "target_namespace": None},
            },
        ),
        "gamma": JobOutcome("gamma", promotion_state="failed"),
    }
    demo.write_reports(outcomes)
    assert sorted(path.name for path in demo.reports_dir.iterdir()) == ["alpha.json", "beta.json"]
    table = demo.summary(outcomes, {"alpha": {"is_paused": False}}).splitlines()
    assert table[0].split() == [
        "job",
        "decision",
        "failed",
        "criteria",
        "target",
        "namespace",
        "production",
        "DAG",
    ]
    assert table[2].split() == ["alpha", "promoted", "-", "prod-ingestion-ns", "alpha", "(active)"]
    assert table[3].split() == ["beta", "rejected", "performance_variance", "-", "-"]
    assert table[4].split()[:2] == ["gamma", "no"]
    assert "promotion run failed" in table[4]


def test_prepare_never_deletes_a_folder_it_did_not_make(repo: Path) -> None:
    foreign = repo / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    demo = Demo(repo_root=repo, demo_dir=foreign, api_port=free_port(), out=io.StringIO())
    with pytest.raises(StackError, match="was not made by the demo"):
        demo.prepare()
    assert (foreign / "notes.txt").read_text() == "keep me"
    # A folder an earlier demo made starts clean.
    demo = _demo(repo)
    demo.prepare()
    (demo.reports_dir / "old.json").write_text("{}")
    demo.prepare()
    assert list(demo.reports_dir.iterdir()) == []


def test_prepare_replaces_the_repositorys_own_demo_folder(repo: Path) -> None:
    (repo / ".demo" / "reports").mkdir(parents=True)
    (repo / ".demo" / "reports" / "stale.json").write_text("{}")
    demo = _demo(repo)
    demo.prepare()
    assert list(demo.reports_dir.iterdir()) == []


def test_feedback_names_each_failed_criterion_with_value_threshold_and_advice(repo: Path) -> None:
    demo = _demo(repo)
    item = {
        "criterion": "performance_variance",
        "measured": 0.81,
        "threshold": 0.3,
        "issue": "High performance variance between runs",
        "recommendation": "Optimize job configuration",
        "action": "Review resource requirements",
    }
    outcomes = {
        "alpha": JobOutcome("alpha", promotion_state="success", report={"feedback_report": None}),
        "beta": JobOutcome(
            "beta",
            promotion_state="success",
            report={"feedback_report": {"detailed_recommendations": [item]}},
        ),
    }
    (line,) = demo.feedback(outcomes)
    assert line.startswith("beta: performance_variance: measured 0.81, threshold 0.3")
    assert "Optimize job configuration" in line
