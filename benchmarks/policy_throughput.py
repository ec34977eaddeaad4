"""Policy throughput over many draft runs: decision + SLA tracking, and end to end from JSON."""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from airflow_sla_promotion.policy.decision import PromotionDecisionEngine
from airflow_sla_promotion.spec import DraftExecution, IngestionJob

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=800)
RUNS = TypeAdapter(list[DraftExecution])
JOB = IngestionJob.model_validate(
    {
        "job_id": "bench_job",
        "job_name": "Benchmark job",
        "tenant": "bench",
        "image": "example/bench:1",
        "schedule_config": {"cron": "0 * * * *"},
        "resource_requirements": {"cpu_cores": 2, "memory_gb": 4, "estimated_runtime_minutes": 10},
        "sla_requirements": {
            "max_runtime": 15,
            "success_rate": 0.95,
            "data_freshness": 60,
            "availability": 0.9,
            "error_recovery_time": 120,
        },
    }
)


def make_runs_json(count: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    runs = []
    for index in range(count):
        failed = rng.random() < 0.03
        runs.append(
            {
                "execution_id": f"run-{index:06d}",
                "job_id": "bench_job",
                "status": "failed" if failed else "completed",
                "created_at": (T0 + timedelta(minutes=10 * index)).isoformat(),
                "actual_runtime_minutes": round(rng.uniform(7, 12), 2),
                "allocated_resources": {"cpu_cores": 2.2, "memory_gb": 4.4},
                "resource_usage": {
                    "avg_cpu_utilization": round(rng.uniform(1.2, 1.9), 3),
                    "peak_memory_usage_gb": round(rng.uniform(2.5, 3.9), 3),
                },
                "data_quality_results": {"checks": [{"name": "not_null", "status": "passed"}]},
                "data_quality_score": 1.0,
                "data_freshness_minutes": round(rng.uniform(5, 40), 1),
                "records_processed": 10_000,
                "records_failed": rng.randint(0, 5),
                "failure_reason": "exit code 1" if failed else None,
            }
        )
    rng.shuffle(runs)
    return json.dumps(runs).encode()


def decide(runs: list[DraftExecution]) -> None:
    """The promotion decision; the engine runs SLA tracking over the same runs as part of it."""
    PromotionDecisionEngine().evaluate_promotion_eligibility(JOB, runs, now=NOW)


def profile(runs: list[DraftExecution], top: int = 12) -> dict[str, object]:
    """Where a decision's time goes (cProfile, by cumulative time), and its time with and without gc."""
    import cProfile
    import gc
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    decide(runs)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(entry[3] for entry in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)  # type: ignore[attr-defined]
    table = []
    for (filename, line, name), (_, calls, _, cumulative, _) in rows:
        if "airflow_sla_promotion" not in filename and "pydantic" not in filename:
            continue
        module = (
            filename.split("airflow_sla_promotion/")[-1]
            if "airflow_sla_promotion" in filename
            else "pydantic"
        )
        table.append({"function": f"{module}:{line} {name}", "calls": calls, "share": cumulative / total})
        if len(table) == top:
            break
    timings = {}
    for label, enabled in (("gc_on_seconds", True), ("gc_off_seconds", False)):
        gc.collect()
        if not enabled:
            gc.disable()
        started = time.perf_counter()
        decide(runs)
        timings[label] = time.perf_counter() - started
        gc.enable()
    return {"top": table, **timings}


def main() -> None:
    """``python -m benchmarks.policy_throughput MODE [RUNS]``; MODE: parse, decide, end_to_end or profile."""
    mode = sys.argv[1] if len(sys.argv) > 1 else "decide"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    payload = make_runs_json(count)
    if mode == "profile":
        print(json.dumps({"mode": mode, "runs": count, **profile(RUNS.validate_json(payload))}))
        return
    runs = RUNS.validate_json(payload) if mode == "decide" else None

    started = time.perf_counter()
    if mode == "parse":
        RUNS.validate_json(payload)
    elif mode == "decide":
        assert runs is not None
        decide(runs)
    elif mode == "end_to_end":
        decide(RUNS.validate_json(payload))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - started
    print(json.dumps({"mode": mode, "runs": count, "seconds": seconds, "runs_per_s": count / seconds}))


if __name__ == "__main__":
    main()
