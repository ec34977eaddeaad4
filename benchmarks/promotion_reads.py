"""Metadata reads of one PromotionOperator evaluation over R draft runs, against the real REST API v2.

``python -m benchmarks.promotion_reads R TEMPLATE_DB`` copies the template metadata DB (see
``benchmarks.airflow_env``), lays down R finished draft runs (one every 12 hours, every 10th failed)
with their task instances and ``draft_execution`` XComs, serves the REST API in-process, and times
``read_draft_executions`` + ``evaluate`` of a PromotionOperator (the evaluation, without applying the
decision). It prints the wall time and the HTTP calls the server answered, by kind.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import airflow_env


def main() -> None:
    count = int(sys.argv[1])
    home = airflow_env.prepare_home(Path(sys.argv[2]))
    try:
        airflow_env.add_draft_runs(count - 1, failed_every=10)
        jobs = Path(tempfile.mkdtemp(prefix="jobs-", dir=home))
        (jobs / f"{airflow_env.JOB_ID}.yaml").write_text(
            yaml.safe_dump(airflow_env.job_document(), sort_keys=False)
        )
        from airflow_sla_promotion.operators.promotion import PromotionOperator

        with contextlib.contextmanager(airflow_env.serve_api)() as server:
            operator = PromotionOperator(
                task_id="promote", job=str(jobs / f"{airflow_env.JOB_ID}.yaml"), kubernetes_conn_id=None
            )
            job = operator.store.load(airflow_env.JOB_ID)
            server.reset()
            started = time.perf_counter()
            executions = operator.read_draft_executions(job, {})  # no task context: XComs over REST
            evaluation = operator.evaluate(job, executions)
            seconds = time.perf_counter() - started
            counts = dict(server.counts)
    finally:
        airflow_env.cleanup_home(home)
    if len(executions) != count:
        raise SystemExit(f"expected {count} draft executions, joined {len(executions)}")
    listing = counts.get("dag_runs_list", 0) + counts.get("task_instances_list", 0)
    print(
        json.dumps(
            {
                "runs": count,
                "seconds": seconds,
                "listing_calls": listing,
                "dag_runs_list": counts.get("dag_runs_list", 0),
                "task_instances_list": counts.get("task_instances_list", 0),
                "xcom_reads": counts.get("xcom", 0),
                "logins": counts.get("login", 0),
                "other_calls": sum(
                    value
                    for key, value in counts.items()
                    if key not in ("dag_runs_list", "task_instances_list", "xcom", "login")
                ),
                "decision": evaluation.promotion_decision.decision,
            }
        )
    )


if __name__ == "__main__":
    main()
