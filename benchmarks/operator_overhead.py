"""Wall time of one pod run: DraftRunOperator against a plain KubernetesPodOperator, on the emulator.

``python -m benchmarks.operator_overhead VARIANT [WORK_SECONDS]`` starts the Kubernetes API emulator
in local-process mode (the pod's command runs as a local process) and times one synchronous
``execute`` of the variant's operator, from the call to its return, in a fresh process (as a worker
runs a task). The pod's job works ``WORK_SECONDS`` (default 2) and reports its usage and checks
through ``job_report`` in both variants.

- ``kpo``: KubernetesPodOperator with the same pod as DraftRunOperator builds (namespace, image,
  command, env, labels, resources, security context) and the same polling intervals.
- ``draft_run``: DraftRunOperator (the same, plus reading the final pod, building, scoring, logging
  and pushing the run record).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import airflow_env

JOB_CODE = """
import sys, time
from airflow_sla_promotion import job_report
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    time.sleep(0.05)
job_report.report(checks=[{"name": "not_null", "status": "passed"}], records_processed=1000, records_failed=0)
"""
RUN_ID = "scheduled__2026-03-01T00:00:00+00:00"
INTERVALS = {"startup_check_interval_seconds": 1, "poll_interval": 0.5}


@dataclass
class RecordingTaskInstance:
    """The part of a runtime task instance KubernetesPodOperator uses; XComs are kept in memory."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1
    map_index: int = -1
    start_date: datetime = field(default_factory=lambda: datetime.now(UTC))
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))


def job_document(work_seconds: float) -> dict[str, Any]:
    return {
        "job_id": "bench_overhead",
        "job_name": "Operator overhead benchmark",
        "tenant": "bench",
        "image": "registry.example.com/bench/ingest:1.0.0",
        "cmds": [sys.executable, "-c", JOB_CODE],
        "arguments": [str(work_seconds)],
        "env": {"SOURCE": "bench"},
        "schedule_config": {"cron": "5 * * * *"},
        "resource_requirements": {"cpu_cores": 1.0, "memory_gb": 2.0, "estimated_runtime_minutes": 1},
        "sla_requirements": {"max_runtime": 30},
    }


def build_operator(variant: str, kubeconfig: Path, work_seconds: float) -> Any:
    from airflow_sla_promotion.operators.draft_run import DraftRunOperator
    from airflow_sla_promotion.spec import IngestionJob

    job = IngestionJob.model_validate(job_document(work_seconds))
    draft = DraftRunOperator(task_id="draft_run", job=job, config_file=str(kubeconfig), **INTERVALS)
    if variant == "draft_run":
        return draft
    if variant != "kpo":
        raise SystemExit(f"unknown variant {variant!r}")
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    # The very pod DraftRunOperator would launch, through the plain operator.
    return KubernetesPodOperator(
        task_id="draft_run",
        namespace=draft.namespace,
        name=draft.name,
        image=draft.image,
        cmds=draft.cmds,
        arguments=draft.arguments,
        env_vars=draft.env_vars,
        labels=draft.labels,
        container_resources=draft.container_resources,
        container_security_context=draft.container_security_context,
        config_file=str(kubeconfig),
        do_xcom_push=False,
        **INTERVALS,
    )


def _time_record_run(operator: Any) -> list[float]:
    """Durations of DraftRunOperator's own step (build, score, log and push the record), as it runs."""
    durations: list[float] = []
    record_run = getattr(operator, "record_run", None)
    if record_run is None:
        return durations

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return record_run(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - started)

    operator.record_run = timed
    return durations


def main() -> None:
    variant = sys.argv[1]
    work_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    home = airflow_env.prepare_home(None)
    try:
        from airflow_sla_promotion.devtools.kube_emulator import KubeEmulator

        with KubeEmulator(mode="local-process") as kube:
            kubeconfig = kube.write_kubeconfig(Path(tempfile.mkdtemp(dir=home)) / "kubeconfig")
            operator = build_operator(variant, kubeconfig, work_seconds)
            record_seconds = _time_record_run(operator)
            ti = RecordingTaskInstance(
                dag_id="bench_overhead__draft", task_id=operator.task_id, run_id=RUN_ID
            )
            context = {"ti": ti, "task_instance": ti, "run_id": RUN_ID, "dag": None, "task": operator}
            started = time.perf_counter()
            operator.execute(context)
            seconds = time.perf_counter() - started
            requests = len(kube.requests)
    finally:
        airflow_env.cleanup_home(home)
    if variant == "draft_run" and "draft_execution" not in ti.xcoms:
        raise SystemExit("DraftRunOperator pushed no draft_execution record")
    print(
        json.dumps(
            {
                "variant": variant,
                "work_seconds": work_seconds,
                "seconds": seconds,
                "kube_requests": requests,
                "recorded": "draft_execution" in ti.xcoms,
                "record_seconds": sum(record_seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
