"""``make demo``: the example jobs from draft runs to promotion on a local airflow standalone."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from airflow_sla_promotion.devtools.stack import (
    USERNAME,
    AirflowStack,
    StackError,
    StackSettings,
    port_is_free,
    promotion_dag_id,
    run_promotion_flow,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import FrameType

    from airflow_sla_promotion.devtools.stack import JobOutcome

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = "sla_promotion_jobs.py"
PRODUCTION_DAG_WAIT_SECONDS = 60.0
MARKER_FILE = ".sla-promotion-demo"


class Demo:
    """Prepares ``.demo/``, runs the stack and the flow, writes reports and prints what happened."""

    def __init__(
        self,
        *,
        repo_root: Path = REPO_ROOT,
        demo_dir: Path | None = None,
        api_port: int = 8080,
        draft_runs: int = 3,
        keep_running: bool = False,
        out: Any = sys.stdout,
    ) -> None:
        self.repo_root = repo_root
        self.demo_dir = demo_dir or repo_root / ".demo"
        self.api_port = api_port
        self.draft_runs = draft_runs
        self.keep_running = keep_running
        self.out = out
        self.started = time.monotonic()
        self.source_jobs = repo_root / "dags" / "jobs"
        self.jobs_dir = self.demo_dir / "jobs"
        self.dags_dir = self.demo_dir / "dags"
        self.reports_dir = self.demo_dir / "reports"
        self.home = self.demo_dir / "airflow"

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:5.0f}s] {message}", file=self.out, flush=True)

    # --- steps ------------------------------------------------------------------------------------

    def prepare(self) -> list[str]:
        """A fresh ``.demo/``: jobs copied from ``dags/jobs`` (tracked files never change); job ids."""
        if not port_is_free(self.api_port):
            raise StackError(
                f"step 'check api-server port' failed: port {self.api_port} on 127.0.0.1 is busy; stop what "
                f"listens there or run with another port, e.g. DEMO_API_PORT={self.api_port + 1} make demo"
            )
        if self.demo_dir.exists():
            # Besides the repository's own .demo/, only ever delete a folder an earlier demo made
            # (DEMO_DIR may point anywhere).
            ours = self.demo_dir == self.repo_root / ".demo" or (self.demo_dir / MARKER_FILE).exists()
            if not ours and any(self.demo_dir.iterdir()):
                raise StackError(
                    f"step 'prepare {self.demo_dir}' failed: it exists and was not made by the demo; "
                    "remove it or choose another DEMO_DIR"
                )
            shutil.rmtree(self.demo_dir)
        for folder in (self.jobs_dir, self.dags_dir, self.reports_dir, self.home):
            folder.mkdir(parents=True)
        (self.demo_dir / MARKER_FILE).write_text("made by make demo; deleted by the next run\n")
        shutil.copy2(self.repo_root / "dags" / DAG_FILE, self.dags_dir / DAG_FILE)
        job_ids = []
        for source in sorted(self.source_jobs.glob("*.yaml")):
            if source.name.startswith("."):
                continue
            shutil.copy2(source, self.jobs_dir / source.name)
            job_ids.append(source.stem)
        if not job_ids:
            raise StackError(f"step 'prepare .demo' failed: no job files in {self.source_jobs}")
        return job_ids

    def stack_settings(self) -> StackSettings:
        return StackSettings(
            home=self.home,
            dags_folder=self.dags_dir,
            jobs_folder=self.jobs_dir,
            api_port=self.api_port,
            python_paths=(self.repo_root / "examples" / "ingestion",),
            extra_env={
                # The example jobs set min_evaluation_period_days: 0 so that the demo needs no waiting days.
                "AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA": "True",
                # The example jobs' scripts keep their data here, not in the repository.
                "SLA_PROMOTION_EXAMPLES_DATA_DIR": str(self.demo_dir / "data"),
            },
        )

    def write_reports(self, outcomes: dict[str, JobOutcome]) -> None:
        for job_id, outcome in outcomes.items():
            if outcome.report is not None:
                path = self.reports_dir / f"{job_id}.json"
                path.write_text(json.dumps(outcome.report, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def wait_for_production_dags(
        self, stack: AirflowStack, outcomes: dict[str, JobOutcome]
    ) -> dict[str, Any]:
        """Production DAGs of promoted jobs that the DAG processor created within a bounded wait."""
        promoted = [job_id for job_id, outcome in outcomes.items() if outcome.status == "promoted"]
        found: dict[str, Any] = {}
        if not promoted:
            return found

        def all_found() -> bool:
            for job_id in promoted:
                if job_id not in found and (record := stack.client.get_dag(job_id)) is not None:
                    found[job_id] = record
            return len(found) == len(promoted)

        self.say(f"waiting up to {PRODUCTION_DAG_WAIT_SECONDS:.0f} s for the production DAG(s) to be parsed")
        try:
            wait_until("production DAGs", all_found, timeout=PRODUCTION_DAG_WAIT_SECONDS, interval=2.0)
        except StackError:
            self.say(f"not parsed in time: {', '.join(sorted(set(promoted) - set(found)))}")
        return found

    # --- output -----------------------------------------------------------------------------------

    def summary(self, outcomes: dict[str, JobOutcome], production: dict[str, Any]) -> str:
        rows = [("job", "decision", "failed criteria", "target namespace", "production DAG")]
        for job_id, outcome in sorted(outcomes.items()):
            report = outcome.report or {}
            decision = report.get("promotion_decision") or {}
            status = outcome.status or f"no report (promotion run {outcome.promotion_state})"
            failed = ", ".join(decision.get("failed_criteria") or []) or "-"
            target = decision.get("target_namespace") or "-"
            if job_id in production:
                dag = "paused" if production[job_id].get("is_paused") else "active"
                production_dag = f"{job_id} ({dag})"
            else:
                production_dag = "-"
            rows.append((job_id, status, failed, target, production_dag))
        return format_table(rows)

    def feedback(self, outcomes: dict[str, JobOutcome]) -> Iterator[str]:
        """For each job not promoted: every failed criterion, measured value, threshold and what to do."""
        for job_id, outcome in sorted(outcomes.items()):
            report = outcome.report or {}
            feedback = report.get("feedback_report") or {}
            for item in feedback.get("detailed_recommendations") or []:
                yield (
                    f"{job_id}: {item.get('criterion')}: measured {item.get('measured')}, threshold "
                    f"{item.get('threshold')}\n    {item.get('issue')}\n    -> {item.get('recommendation')}; "
                    f"{item.get('action')}"
                )

    def diffs(self, job_ids: Sequence[str]) -> Iterator[str]:
        for job_id in job_ids:
            original = self.source_jobs / f"{job_id}.yaml"
            rewritten = self.jobs_dir / f"{job_id}.yaml"
            diff = "".join(
                difflib.unified_diff(
                    original.read_text(encoding="utf-8").splitlines(keepends=True),
                    rewritten.read_text(encoding="utf-8").splitlines(keepends=True),
                    fromfile=f"dags/jobs/{job_id}.yaml",
                    tofile=self._display(rewritten),
                )
            )
            yield diff or f"(dags/jobs/{job_id}.yaml unchanged)\n"

    def _display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.repo_root))
        except ValueError:
            return str(path)

    def explain_failures(self, stack: AirflowStack, outcomes: dict[str, JobOutcome]) -> None:
        """For a promotion run that left no report: the end of its tasks' logs, read through REST."""
        for job_id, outcome in sorted(outcomes.items()):
            if outcome.report is not None or outcome.promotion_run_id is None:
                continue
            dag_id = promotion_dag_id(job_id)
            try:
                tasks = stack.client.task_instances(dag_id, outcome.promotion_run_id)
            except httpx.HTTPError as error:
                print(f"\n{dag_id}: cannot read its task instances: {error}", file=self.out)
                continue
            for task in tasks:
                if task.get("state") == "success" or not task.get("try_number"):
                    continue
                try:
                    log = stack.client.task_log(
                        dag_id, outcome.promotion_run_id, task["task_id"], task["try_number"]
                    )
                except httpx.HTTPError as error:
                    log = f"(cannot read the log: {error})"
                tail = "\n".join(log.splitlines()[-30:])
                print(
                    f"\n{dag_id}.{task['task_id']} ended {task.get('state')}; end of its log:\n{tail}",
                    file=self.out,
                )

    # --- the whole demo ---------------------------------------------------------------------------

    def run(self) -> int:
        job_ids = self.prepare()
        self.say(f"prepared {self._display(self.demo_dir)} with jobs {', '.join(job_ids)}")
        stack = AirflowStack(self.stack_settings())
        self.say(
            f"starting the Kubernetes emulator and airflow standalone (logs in {self._display(self.home)})"
        )
        try:
            stack.start()
            self.say(f"airflow standalone is healthy at {stack.api_url}")
            outcomes = run_promotion_flow(stack, job_ids, draft_runs=self.draft_runs, progress=self.say)
            self.write_reports(outcomes)
            self.explain_failures(stack, outcomes)
            production = self.wait_for_production_dags(stack, outcomes)
            print(file=self.out)
            print(self.summary(outcomes, production), file=self.out)
            reasons = list(self.feedback(outcomes))
            if reasons:
                print("\nWhy (feedback reports):", file=self.out)
                for reason in reasons:
                    print(f"  {reason}", file=self.out)
            print(f"\nReports: {self._display(self.reports_dir)}/<job_id>.json", file=self.out)
            print("\nConfig changes (tracked originals -> rewritten copies):\n", file=self.out)
            for diff in self.diffs(job_ids):
                print(diff, file=self.out)
            print(f"Airflow UI: {stack.api_url}  login: {USERNAME} / {stack.password}", file=self.out)
            if not self.keep_running:
                print(
                    "(run with DEMO_KEEP_RUNNING=1 to keep the stack running and look around)", file=self.out
                )
            else:
                print("DEMO_KEEP_RUNNING=1: the stack keeps running; press Ctrl-C to stop it.", file=self.out)
                # Ctrl-C is how this run ends: not an interruption.
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1)
        finally:
            if threading.current_thread() is threading.main_thread():
                # A second Ctrl-C must not cut the cleanup short.
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_IGN)
            self.say("stopping everything the demo started")
            stack.stop()
            leftovers = stack.leftover_processes()
            if leftovers:
                self.say(f"warning: processes still running: {leftovers}")
            else:
                self.say("stopped; no process left running")
        return 0 if all(outcome.report is not None for outcome in outcomes.values()) else 1


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM and SIGHUP stop the demo like Ctrl-C: through the cleanup that stops the stack. SIGINT too
    # when started in the background, where a shell hands it over ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGHUP, _raise_keyboard_interrupt)
    demo = Demo(
        demo_dir=Path(os.environ["DEMO_DIR"]).resolve() if os.environ.get("DEMO_DIR") else None,
        api_port=int(os.environ.get("DEMO_API_PORT", "8080")),
        draft_runs=int(os.environ.get("DEMO_DRAFT_RUNS", "3")),
        keep_running=os.environ.get("DEMO_KEEP_RUNNING") == "1",
    )
    try:
        return demo.run()
    except StackError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted; everything it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
