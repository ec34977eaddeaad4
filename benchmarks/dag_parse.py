"""DAG parse cost of N job files: the provider's factory, hand-written Python, and dag-factory 1.1.0.

``python -m benchmarks.dag_parse VARIANT JOBS`` writes JOBS job files (half draft, half active) to a
temporary folder, imports everything the variant needs, then times one parse of the folder into DAGs
and prints ``{"variant", "jobs", "dags", "tasks", "seconds", "peak_rss_mb", "rss_before_mb"}``.

Variants (``ablation`` instead times, in one process, the factory with its DAG docs switched off, to
show where its extra cost goes):

- ``factory``: ``dag_factory.build_dags(folder)`` (validation, planning, DraftRunOperator per run task).
- ``handwritten``: what a careful author writes by hand: each file loaded with ``yaml.CSafeLoader``,
  no validation, the same DAGs (ids, timetables, dates, tags) with plain KubernetesPodOperator run
  tasks (same namespace, image, command, env, labels and resources) and the same sensor and
  promotion tasks.
- ``dagfactory``: dag-factory 1.1.0 loading equivalent dag-factory YAML (one file per job) with the
  same operators; it must be importable (``benchmarks.run`` installs it outside the project's
  environment and puts it on ``PYTHONPATH`` for this variant only).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

DRAFT_NAMESPACE = "draft-ingestion-ns"
TARGET_NAMESPACE = "prod-ingestion-ns"
CRONS = ("5 * * * *", "30 2 * * *", "0 3 * * 1", "*/30 * * * *")
KPO_PATH = "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator"
SENSOR_PATH = "airflow_sla_promotion.sensors.draft_runs.DraftRunsSensor"
PROMOTION_PATH = "airflow_sla_promotion.operators.promotion.PromotionOperator"


def job_document(index: int) -> dict[str, Any]:
    """Job ``index``: even ones are drafts, odd ones active (promoted) jobs."""
    job_id = f"bench_job_{index:05d}"
    document: dict[str, Any] = {
        "job_id": job_id,
        "job_name": f"Benchmark job {index}",
        "tenant": f"tenant-{index % 7}",
        "owner": "bench-team",
        "description": "Loads one benchmark partition.",
        "image": "registry.example.com/bench/ingest:1.0.0",
        "cmds": ["python", "-m", "bench_ingest"],
        "arguments": ["--partition", str(index)],
        "env": {"PARTITION": str(index), "TARGET": "warehouse"},
        "schedule_config": {"cron": CRONS[index % len(CRONS)]},
        "resource_requirements": {
            "cpu_cores": 0.5 + (index % 4) * 0.5,
            "memory_gb": 1 + index % 3,
            "estimated_runtime_minutes": 5 + index % 10,
        },
        "sla_requirements": {"max_runtime": 30, "success_rate": 0.95, "data_freshness": 90},
        "status": "draft" if index % 2 == 0 else "active",
    }
    if document["status"] == "active":
        document["namespace"] = TARGET_NAMESPACE
        document["promoted_at"] = "2026-01-02T00:00:00+00:00"
    return document


def write_jobs(folder: Path, count: int) -> list[dict[str, Any]]:
    documents = [job_document(index) for index in range(count)]
    for document in documents:
        (folder / f"{document['job_id']}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return documents


# --- hand-written -----------------------------------------------------------------------------------


def handwritten_dags(folder: Path) -> dict[str, Any]:
    """The same DAGs as the factory, written by hand: CSafeLoader, no validation, plain KPO tasks."""
    from datetime import datetime, timedelta

    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import DAG, CronTriggerTimetable, DeltaTriggerTimetable
    from kubernetes.client import models as k8s

    from airflow_sla_promotion.operators.promotion import PromotionOperator
    from airflow_sla_promotion.policy.planning import calculate_test_frequency, test_interval
    from airflow_sla_promotion.policy.quantities import kubernetes_resources
    from airflow_sla_promotion.sensors.draft_runs import DraftRunsSensor

    start = datetime.fromisoformat("2025-01-01T00:00:00+00:00")
    dags: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        with path.open() as stream:
            job = yaml.load(stream, Loader=yaml.CSafeLoader)
        job_id, resources = job["job_id"], job["resource_requirements"]
        tags = ["sla-promotion", f"tenant:{job['tenant']}"]
        pod = {
            "image": job["image"],
            "cmds": list(job["cmds"]),
            "arguments": list(job.get("arguments", [])),
            "env_vars": dict(job.get("env", {})),
            "name": f"{job_id}-{'draft' if job['status'] == 'draft' else 'production'}".replace("_", "-"),
            "container_security_context": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        if job["status"] == "draft":
            cpu = max(1.0, resources["cpu_cores"] * 1.1)
            memory = max(2.0, resources["memory_gb"] * 1.1)
            quantities = kubernetes_resources(cpu, memory)
            interval = test_interval(calculate_test_frequency(job["schedule_config"]["cron"]))
            with DAG(
                dag_id=f"{job_id}__draft",
                schedule=DeltaTriggerTimetable(interval),
                start_date=start,
                catchup=False,
                auto_register=False,
                max_active_runs=1,
                tags=[*tags, "phase:draft"],
                default_args={"owner": job.get("owner") or job["tenant"]},
            ) as draft:
                KubernetesPodOperator(
                    task_id="draft_run",
                    namespace=DRAFT_NAMESPACE,
                    labels={"sla-promotion/job-id": job_id, "sla-promotion/phase": "draft"},
                    container_resources=k8s.V1ResourceRequirements(**quantities),
                    **pod,
                )
            with DAG(
                dag_id=f"{job_id}__promotion",
                schedule=DeltaTriggerTimetable(timedelta(days=1)),
                start_date=start,
                catchup=False,
                auto_register=False,
                max_active_runs=1,
                tags=[*tags, "phase:promotion"],
                default_args={"owner": job.get("owner") or job["tenant"]},
            ) as promotion:
                wait = DraftRunsSensor(
                    task_id="wait_for_draft_runs", job=str(path), draft_dag_id=draft.dag_id
                )
                wait >> PromotionOperator(
                    task_id="promote", job=str(path), draft_dag_id=draft.dag_id, jobs_folder=str(folder)
                )
            dags[draft.dag_id] = draft
            dags[promotion.dag_id] = promotion
        elif job["status"] == "active":
            quantities = kubernetes_resources(resources["cpu_cores"], resources["memory_gb"])
            with DAG(
                dag_id=job_id,
                schedule=CronTriggerTimetable(job["schedule_config"]["cron"], timezone="UTC"),
                start_date=datetime.fromisoformat(job["promoted_at"]),
                catchup=False,
                auto_register=False,
                max_active_runs=1,
                is_paused_upon_creation=False,
                tags=[*tags, "phase:production"],
                default_args={"owner": job.get("owner") or job["tenant"]},
            ) as production:
                KubernetesPodOperator(
                    task_id="run",
                    namespace=job["namespace"],
                    labels={"sla-promotion/job-id": job_id, "sla-promotion/phase": "production"},
                    container_resources=k8s.V1ResourceRequirements(**quantities),
                    **pod,
                )
            dags[production.dag_id] = production
    return dags


# --- dag-factory 1.1.0 --------------------------------------------------------------------------------


def dagfactory_document(job: dict[str, Any], job_path: Path, jobs_folder: Path) -> dict[str, Any]:
    """dag-factory YAML equivalent to a job's DAGs (computed resources written out, as a user would)."""

    from airflow_sla_promotion.policy.planning import calculate_test_frequency, test_interval
    from airflow_sla_promotion.policy.quantities import kubernetes_resources

    job_id, resources = job["job_id"], job["resource_requirements"]
    tags = ["sla-promotion", f"tenant:{job['tenant']}"]
    pod = {
        "operator": KPO_PATH,
        "image": job["image"],
        "cmds": job["cmds"],
        "arguments": job.get("arguments", []),
        "env_vars": job.get("env", {}),
        "container_security_context": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    common = {
        "start_date": "2025-01-01",
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {"owner": job.get("owner") or job["tenant"]},
    }

    def requirements(cpu: float, memory: float) -> dict[str, Any]:
        return {
            "__type__": "kubernetes.client.models.V1ResourceRequirements",
            **kubernetes_resources(cpu, memory),
        }

    if job["status"] == "draft":
        seconds = int(test_interval(calculate_test_frequency(job["schedule_config"]["cron"])).total_seconds())
        return {
            f"{job_id}__draft": {
                **common,
                "schedule": {
                    "__type__": "airflow.sdk.DeltaTriggerTimetable",
                    "delta": {"__type__": "datetime.timedelta", "seconds": seconds},
                },
                "tags": [*tags, "phase:draft"],
                "tasks": [
                    {
                        "task_id": "draft_run",
                        **pod,
                        "name": f"{job_id}-draft".replace("_", "-"),
                        "namespace": DRAFT_NAMESPACE,
                        "labels": {"sla-promotion/job-id": job_id, "sla-promotion/phase": "draft"},
                        "container_resources": requirements(
                            max(1.0, resources["cpu_cores"] * 1.1), max(2.0, resources["memory_gb"] * 1.1)
                        ),
                    }
                ],
            },
            f"{job_id}__promotion": {
                **common,
                "schedule": {
                    "__type__": "airflow.sdk.DeltaTriggerTimetable",
                    "delta": {"__type__": "datetime.timedelta", "days": 1},
                },
                "tags": [*tags, "phase:promotion"],
                "tasks": [
                    {
                        "task_id": "wait_for_draft_runs",
                        "operator": SENSOR_PATH,
                        "job": str(job_path),
                        "draft_dag_id": f"{job_id}__draft",
                    },
                    {
                        "task_id": "promote",
                        "operator": PROMOTION_PATH,
                        "job": str(job_path),
                        "draft_dag_id": f"{job_id}__draft",
                        "jobs_folder": str(jobs_folder),
                        "dependencies": ["wait_for_draft_runs"],
                    },
                ],
            },
        }
    return {
        job_id: {
            **common,
            "start_date": "2026-01-02",
            "schedule": job["schedule_config"]["cron"],
            "is_paused_upon_creation": False,
            "tags": [*tags, "phase:production"],
            "tasks": [
                {
                    "task_id": "run",
                    **pod,
                    "name": f"{job_id}-production".replace("_", "-"),
                    "namespace": job["namespace"],
                    "labels": {"sla-promotion/job-id": job_id, "sla-promotion/phase": "production"},
                    "container_resources": requirements(resources["cpu_cores"], resources["memory_gb"]),
                }
            ],
        }
    }


def write_dagfactory_configs(folder: Path, jobs_folder: Path, documents: list[dict[str, Any]]) -> None:
    for job in documents:
        config = dagfactory_document(job, jobs_folder / f"{job['job_id']}.yaml", jobs_folder)
        (folder / f"{job['job_id']}.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def dagfactory_dags(folder: Path) -> dict[str, Any]:
    from airflow.sdk import DAG
    from dagfactory import load_yaml_dags

    namespace: dict[str, Any] = {}
    load_yaml_dags(globals_dict=namespace, dags_folder=str(folder), suffix=[".yml"])
    return {name: value for name, value in namespace.items() if isinstance(value, DAG)}


# --- the case -----------------------------------------------------------------------------------------


def ablation(count: int, rounds: int = 3) -> dict[str, float]:
    """Where the factory's extra cost over the hand-written Python goes: the same parse with one feature
    switched off at a time (in this process only, by replacing the function), median of ``rounds``."""
    import gc
    import statistics

    import airflow_sla_promotion.dag_factory as factory
    from airflow_sla_promotion.config import ProviderSettings

    settings = ProviderSettings(
        draft_namespace=DRAFT_NAMESPACE, allowed_target_namespaces=(TARGET_NAMESPACE,)
    )
    with tempfile.TemporaryDirectory(prefix="bench-dags-") as tmp:
        folder = Path(tmp)
        write_jobs(folder, count)

        def timed(build: Any) -> float:
            samples = []
            for _ in range(rounds):
                gc.collect()
                started = time.perf_counter()
                build()
                samples.append(time.perf_counter() - started)
            return statistics.median(samples)

        result = {
            "handwritten": timed(lambda: handwritten_dags(folder)),
            "factory": timed(lambda: factory.build_dags(folder, settings=settings)),
        }
        original_doc_md, original_spec_text = factory._doc_md, factory._spec_text
        factory._doc_md = lambda *args, **kwargs: ""  # type: ignore[assignment]
        factory._spec_text = lambda *args, **kwargs: ""  # type: ignore[assignment]
        result["factory_without_doc_md"] = timed(lambda: factory.build_dags(folder, settings=settings))
        factory._doc_md, factory._spec_text = original_doc_md, original_spec_text  # type: ignore[assignment]
    return result


def _rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    variant = sys.argv[1]
    count = int(sys.argv[2])
    if variant == "ablation":
        print(json.dumps({"variant": variant, "jobs": count, **ablation(count)}))
        return
    with tempfile.TemporaryDirectory(prefix="bench-dags-") as tmp:
        jobs_folder = Path(tmp) / "jobs"
        jobs_folder.mkdir()
        documents = write_jobs(jobs_folder, count)

        # Everything a parse imports, before the clock starts, in every variant alike: the marginal
        # cost (N jobs minus 0 jobs) then excludes import time.
        import airflow.providers.cncf.kubernetes.operators.pod
        import airflow.sdk  # noqa: F401

        import airflow_sla_promotion.dag_factory
        import airflow_sla_promotion.operators.draft_run
        import airflow_sla_promotion.operators.promotion
        import airflow_sla_promotion.sensors.draft_runs  # noqa: F401

        if variant == "factory":
            from airflow_sla_promotion.config import ProviderSettings

            settings = ProviderSettings(
                draft_namespace=DRAFT_NAMESPACE,
                allowed_target_namespaces=(TARGET_NAMESPACE,),
                jobs_folder=str(jobs_folder),
            )

            def parse() -> dict[str, Any]:
                return airflow_sla_promotion.dag_factory.build_dags(jobs_folder, settings=settings)

        elif variant == "handwritten":

            def parse() -> dict[str, Any]:
                return handwritten_dags(jobs_folder)

        elif variant == "dagfactory":
            import dagfactory  # noqa: F401

            config_folder = Path(tmp) / "dagfactory"
            config_folder.mkdir()
            write_dagfactory_configs(config_folder, jobs_folder, documents)

            def parse() -> dict[str, Any]:
                return dagfactory_dags(config_folder)

        else:
            raise SystemExit(f"unknown variant {variant!r}")

        rss_before = _rss_mb()
        started = time.perf_counter()
        dags = parse()
        seconds = time.perf_counter() - started
        peak = _rss_mb()

    tasks = sum(len(dag.tasks) for dag in dags.values())
    invalid = [dag_id for dag_id in dags if dag_id.endswith("__invalid")]
    if invalid:
        raise SystemExit(f"{variant}: {len(invalid)} job files did not build, e.g. {invalid[0]}")
    print(
        json.dumps(
            {
                "variant": variant,
                "jobs": count,
                "dags": len(dags),
                "tasks": tasks,
                "seconds": seconds,
                "peak_rss_mb": peak,
                "rss_before_mb": rss_before,
            }
        )
    )


if __name__ == "__main__":
    main()
