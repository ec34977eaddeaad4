"""Crash and concurrency tests of the job config store: SIGKILLed writers and many concurrent writers."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from airflow_sla_promotion.config import ProviderSettings
from airflow_sla_promotion.config_store import JobConfigStore, load_job, load_jobs
from airflow_sla_promotion.spec import PromotionDecision, PromotionEvaluation
from airflow_sla_promotion.workflow import PromotionWorkflowManager

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.integration

JOB = """\
# {job_id}: crash-test job.
job_id: {job_id}
job_name: Crash test {job_id}
tenant: orders
image: registry.example.com/orders/ingest:1.4
schedule_config:
  cron: "0 2 * * *"   # nightly
resource_requirements:
  cpu_cores: 2   # first guess
  memory_gb: 4
  estimated_runtime_minutes: 30
env:
  SOURCE: orders-db
"""

KILLS = 200


def write_job(folder: Path, job_id: str) -> Path:
    path = folder / f"{job_id}.yaml"
    path.write_text(JOB.format(job_id=job_id))
    return path


def promotion(job_id: str, cpu: float = 1.5) -> PromotionEvaluation:
    return PromotionEvaluation(
        job_id=job_id,
        evaluation_data={},
        criteria_results={},
        promotion_decision=PromotionDecision(
            decision="promote",
            target_namespace="prod-ingestion-ns",
            resource_adjustments={"cpu_cores": {"current": 2, "recommended": cpu, "reason": "right-size"}},
            message="meets all criteria",
        ),
        evaluated_at=datetime(2026, 3, 6, tzinfo=UTC),
    )


def fork(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child that exits 0 on success, 1 on an exception (printed)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child process
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def visible_files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if not path.name.startswith(".")}


def test_sigkilled_promote_and_rollback_always_leave_a_whole_valid_file(tmp_path: Path) -> None:
    path = write_job(tmp_path, "orders")
    write_job(tmp_path, "customers")
    store = JobConfigStore(tmp_path)

    def promote_and_roll_back_forever(cpu: float, ready: int) -> None:
        manager = PromotionWorkflowManager(JobConfigStore(tmp_path), settings=ProviderSettings())
        os.write(ready, b"r")
        while True:
            if store.load("orders").status == "active":
                store.rollback("orders", actor="crash-test", reason="undo")
            else:
                manager.execute_promotion_workflow(promotion("orders", cpu), now=datetime.now(UTC))

    # Import everything a write needs once, here, so that forked writers start writing at once.
    PromotionWorkflowManager(store).execute_promotion_workflow(promotion("orders"), now=datetime.now(UTC))
    store.rollback("orders", actor="crash-test", reason="warm-up")

    rng = random.Random(20260306)
    leftovers_seen = 0
    for _ in range(KILLS):
        ready_read, ready_write = os.pipe()
        cpu = rng.choice([0.5, 1.0, 1.5, 3.0])
        pid = fork(lambda: promote_and_roll_back_forever(cpu, ready_write))  # noqa: B023 - runs at once
        os.close(ready_write)
        os.read(ready_read, 1)  # the writer is running: kill it at a random moment of its work
        os.close(ready_read)
        time.sleep(rng.uniform(0.0, 0.04))
        os.kill(pid, signal.SIGKILL)
        assert wait(pid) == -signal.SIGKILL, "the writer stopped by itself (it failed): see its traceback"

        job = load_job(path)  # whole and valid, or this raises
        assert job.job_id == "orders"
        assert job.status in ("draft", "active")
        jobs, errors = load_jobs(tmp_path)
        assert errors == []
        assert sorted(jobs) == ["customers", "orders"]
        assert visible_files(tmp_path) == {"orders.yaml", "customers.yaml"}
        leftovers_seen += any(tmp_path.glob(".orders.yaml.*.tmp"))

    # After all the crashes the store still works, and its history is consistent.
    for _ in range(2):
        assert wait(fork(lambda: store.rollback("orders", actor="after", reason="check"))) == 0
    history = store.history("orders")
    assert len(history) >= 10, "the writers were killed before they ever wrote"
    for record in history:
        content = record.content_path.read_bytes()
        assert hashlib.sha256(content).hexdigest() == record.before_sha256
        load_job(record.content_path)  # every saved version is a whole, valid job
    applied = [record for record in history if record.applied]
    for earlier, later in zip(applied, applied[1:], strict=False):
        assert earlier.after_sha256 == later.before_sha256
    assert hashlib.sha256(path.read_bytes()).hexdigest() == applied[-1].after_sha256
    # Stale temp files from killed writers are hidden (never loaded) and removed by the next writer.
    assert not any(tmp_path.glob(".orders.yaml.*.tmp"))
    print(f"{KILLS} kills; {len(history)} versions; a temp file was left behind after {leftovers_seen} kills")


def test_concurrent_writers_lose_no_update_and_leave_a_consistent_history(tmp_path: Path) -> None:
    processes = 6
    updates_each = 8
    distinct = [f"job-{index}" for index in range(processes)]
    for job_id in [*distinct, "shared", "counter"]:
        write_job(tmp_path, job_id)
    start_read, start_write = os.pipe()
    results = tmp_path / ".results"
    results.mkdir()

    def writer(index: int) -> Callable[[], None]:
        def work() -> None:
            os.close(start_write)
            assert os.read(start_read, 1) == b"g"  # start together
            store = JobConfigStore(tmp_path)
            manager = PromotionWorkflowManager(store, settings=ProviderSettings())
            outcomes = [
                manager.execute_promotion_workflow(promotion(distinct[index]), now=datetime.now(UTC)),
                manager.execute_promotion_workflow(promotion("shared"), now=datetime.now(UTC)),
            ]
            for update in range(updates_each):

                def add_entry(document, job, name: str = f"W{index}_{update}") -> None:  # type: ignore[no-untyped-def]
                    document["env"][name] = str(os.getpid())

                store.update("counter", add_entry, actor=f"writer-{index}", action="edit", reason=f"{update}")
            changed = sum(1 for outcome in outcomes[1:] if outcome["changed"])
            (results / f"{index}").write_text(str(changed))

        return work

    pids = [fork(writer(index)) for index in range(processes)]
    os.close(start_read)
    os.write(start_write, b"g" * processes)
    os.close(start_write)
    assert [wait(pid) for pid in pids] == [0] * processes

    store = JobConfigStore(tmp_path)
    jobs, errors = load_jobs(tmp_path)
    assert errors == []
    # Distinct jobs: each promoted once.
    for job_id in distinct:
        assert jobs[job_id].status == "active"
        assert [entry.action for entry in jobs[job_id].promotion_history] == ["promote"]
    # The same job promoted by every process at once: rewritten exactly once, the others saw it done.
    assert sum(int((results / f"{index}").read_text()) for index in range(processes)) == 1
    assert [entry.action for entry in jobs["shared"].promotion_history] == ["promote"]
    assert len(store.history("shared")) == 1
    # Concurrent edits of one job: none lost, one history entry and one saved version each, in a chain.
    counter = jobs["counter"]
    expected = {f"W{index}_{update}" for index in range(processes) for update in range(updates_each)}
    assert set(counter.env) - {"SOURCE"} == expected
    assert len(counter.promotion_history) == processes * updates_each
    history = store.history("counter")
    assert len(history) == processes * updates_each
    assert all(record.applied for record in history)
    for earlier, later in zip(history, history[1:], strict=False):
        assert earlier.after_sha256 == later.before_sha256
    assert "# first guess" in (tmp_path / "counter.yaml").read_text()
