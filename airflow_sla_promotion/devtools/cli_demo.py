"""Interim demo: run the ``sla-promotion`` CLI over the example jobs and run histories, print the decisions."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

from airflow_sla_promotion.cli import main as cli

#: The examples' draft windows close here; deciding at a fixed time keeps the demo reproducible.
DEFAULT_NOW = "2026-03-09T00:00:00Z"
DEFAULT_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _json(*argv: str) -> dict:  # type: ignore[type-arg]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(list(argv))
    if code != 0:
        raise SystemExit(f"sla-promotion {' '.join(argv)} exited with {code}")
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def demo(examples: Path, now: str) -> int:
    jobs = sorted((examples / "jobs").glob("*.yaml"))
    if not jobs:
        print(f"no example jobs in {examples / 'jobs'}", file=sys.stderr)
        return 1
    outcomes = []
    for job in jobs:
        runs = examples / "runs" / f"{job.stem}.json"
        print("=" * 100)
        print(f"$ sla-promotion plan {job.relative_to(examples.parent)}")
        plan = _json("plan", str(job), "--start", now)
        resources = plan["test_resources"]
        print(
            f"  draft runs {plan['test_frequency']} ({plan['test_interval']}) in {plan['draft_namespace']} for "
            f"{plan['test_execution_days']} days with {resources['cpu_cores']} cores, {resources['memory_gb']} GiB, "
            f"{resources['estimated_runtime_minutes']} min"
        )
        print(
            f"\n$ sla-promotion decide {job.relative_to(examples.parent)} {runs.relative_to(examples.parent)} "
            f"--now {now} --format table\n"
        )
        cli(["decide", str(job), str(runs), "--now", now, "--format", "table"])
        decision = _json("decide", str(job), str(runs), "--now", now)["promotion_decision"]["decision"]
        outcomes.append((job.stem, decision))
        print()
    print("=" * 100)
    for job_id, decision in outcomes:
        print(f"{job_id:<30} {decision}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=Path, default=DEFAULT_EXAMPLES, help="folder with jobs/ and runs/")
    parser.add_argument("--now", default=DEFAULT_NOW, help="evaluation time (ISO 8601)")
    args = parser.parse_args(argv)
    return demo(args.examples, args.now)


if __name__ == "__main__":
    raise SystemExit(main())
