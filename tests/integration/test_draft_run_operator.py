"""DraftRunOperator through the real KubernetesPodOperator code path against the Kubernetes emulator."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_sla_promotion.devtools.kube_emulator import KubeEmulator, PodScript
from airflow_sla_promotion.operators.draft_run import DraftRunOperator
from airflow_sla_promotion.spec import DraftExecution, IngestionJob
from tests.conftest import load_dag_file
from tests.integration.kube_fixtures import task_context

pytestmark = pytest.mark.integration
DRAFT_NS = "draft-ingestion-ns"
RUN_ID = "scheduled__2026-03-01T00:00:00+00:00"
WATERMARK = "2026-03-01T00:00:00+00:00"

REPORTING_JOB = textwrap.dedent(
    f"""
    import sys
    from airflow_sla_promotion import job_report
    print("loading batch")
    job_report.report(
        checks=[
            {{"name": "not_null", "status": "passed"}},
            {{"name": "row_count", "status": "passed"}},
            {{"name": "duplicates", "status": "warning", "details": "2 duplicate keys"}},
        ],
        records_processed=1000,
        records_failed=2,
        data_watermark="{WATERMARK}",
    )
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """
)


def make_job(code: str = REPORTING_JOB, arguments: list[str] | None = None, **overrides: Any) -> IngestionJob:
    data = {
        "job_id": "orders_ingest",
        "job_name": "Orders ingest",
        "tenant": "sales",
        "image": "registry.example.com/orders:1.0",
        "cmds": [sys.executable, "-c", code],
        "arguments": arguments or [],
        "env": {"SOURCE": "orders-export"},
        "schedule_config": {"cron": "5 * * * *"},
        "resource_requirements": {"cpu_cores": 1.0, "memory_gb": 2.0, "estimated_runtime_minutes": 10},
        "sla_requirements": {"max_runtime": 30, "data_freshness": 60},
        **overrides,
    }
    return IngestionJob.model_validate(data)


def operator(job: IngestionJob | str, **kwargs: Any) -> DraftRunOperator:
    kwargs.setdefault("startup_check_interval_seconds", 1)
    kwargs.setdefault("poll_interval", 0.5)
    return DraftRunOperator(job=job, **kwargs)


def run_sync(op: DraftRunOperator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute; return (the XComs pushed, the return value or None when it raised)."""
    context = task_context(op, run_id=RUN_ID)
    returned = op.execute(context)
    return context["ti"].xcoms, returned


def test_draft_pod_request_and_a_measured_successful_run(
    kube_emulator: KubeEmulator, kubeconfig: Path
) -> None:
    op = operator(make_job(), config_file=str(kubeconfig))
    context = task_context(op, run_id=RUN_ID)
    returned = op.execute(context)
    xcoms = context["ti"].xcoms

    post = kube_emulator.find_requests("POST")[0]
    assert post.namespace == DRAFT_NS
    container = post.body["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "1100m", "memory": "2253Mi"},
        "limits": {"memory": "2253Mi"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["image"] == "registry.example.com/orders:1.0"
    assert {"name": "SOURCE", "value": "orders-export"} in container["env"]
    labels = post.body["metadata"]["labels"]
    assert labels["sla-promotion/job-id"] == "orders_ingest"
    assert labels["sla-promotion/tenant"] == "sales"
    assert labels["sla-promotion/phase"] == "draft"
    assert post.body["metadata"]["name"].startswith("orders-ingest-draft")
    assert op.task_id == "draft_run"

    record = xcoms["draft_execution"]
    assert returned == record
    execution = DraftExecution.model_validate(record)
    assert execution.status == "completed"
    assert execution.failure_reason is None
    assert execution.execution_id == RUN_ID
    assert execution.try_number == 1
    assert execution.job_id == "orders_ingest"
    assert (execution.pod_name, execution.pod_namespace) == (xcoms["pod_name"], DRAFT_NS)
    assert execution.allocated_resources.model_dump() == {"cpu_cores": 1.1, "memory_gb": 2.2}
    assert execution.resource_usage is not None
    # A single-threaded job uses at most one core; its wall time comes from /proc in clock ticks
    # (10 ms), so for this ~50 ms job the bound holds within two ticks.
    wall_seconds = execution.actual_runtime_minutes * 60
    cpu_seconds = execution.resource_usage.avg_cpu_utilization * wall_seconds
    assert 0 < cpu_seconds <= wall_seconds + 0.02
    assert 0.001 < execution.resource_usage.peak_memory_usage_gb < 1
    assert [(c.name, c.status) for c in execution.data_quality_results.checks] == [
        ("not_null", "passed"),
        ("row_count", "passed"),
        ("duplicates", "warning"),
    ]
    assert execution.data_quality_score is not None
    assert (execution.records_processed, execution.records_failed) == (1000, 2)
    lag = (execution.created_at - datetime.fromisoformat(WATERMARK)).total_seconds() / 60
    assert execution.data_freshness_minutes == pytest.approx(lag)
    assert execution.actual_runtime_minutes > 0
    assert "draft_execution" in xcoms
    assert "return_value" not in xcoms  # no sidecar


def test_exit_code_failure_pushes_the_record_before_failing(
    kube_emulator: KubeEmulator, kubeconfig: Path
) -> None:
    op = operator(make_job(arguments=["3"]), config_file=str(kubeconfig))
    context = task_context(op, run_id=RUN_ID)
    with pytest.raises(AirflowException, match="returned a failure"):
        op.execute(context)
    execution = DraftExecution.model_validate(context["ti"].xcoms["draft_execution"])
    assert execution.status == "failed"
    assert execution.failure_reason == "exit code 3 (Error)"
    assert execution.resource_usage is not None  # it reported before exiting
    assert execution.records_processed == 1000
    assert kube_emulator.find_requests("PATCH")
    assert kube_emulator.pods() == []


def test_a_job_that_reports_nothing_gets_null_usage(kube_emulator: KubeEmulator, kubeconfig: Path) -> None:
    op = operator(make_job("print('no report')"), config_file=str(kubeconfig))
    xcoms, returned = run_sync(op)
    execution = DraftExecution.model_validate(xcoms["draft_execution"])
    assert execution.status == "completed"
    assert execution.resource_usage is None
    assert execution.data_quality_results is None
    assert execution.data_quality_score is None
    assert execution.records_processed is None
    assert execution.data_freshness_minutes is None
    assert execution.actual_runtime_minutes >= 0


def test_oomkilled_run_is_recorded(scripted_kube_emulator: KubeEmulator, kubeconfig: Path) -> None:
    scripted_kube_emulator.add_script(PodScript(exit_code=137, reason="OOMKilled", run_seconds=0.2))
    op = operator(make_job(), config_file=str(kubeconfig))
    context = task_context(op, run_id=RUN_ID)
    with pytest.raises(AirflowException):
        op.execute(context)
    execution = DraftExecution.model_validate(context["ti"].xcoms["draft_execution"])
    assert execution.status == "failed"
    assert execution.failure_reason.startswith("OOMKilled")
    assert "2253Mi" in execution.failure_reason
    assert execution.resource_usage is None


def test_image_pull_failure_is_recorded(scripted_kube_emulator: KubeEmulator, kubeconfig: Path) -> None:
    scripted_kube_emulator.add_script(
        PodScript(waiting_reason="ErrImagePull", waiting_message="manifest for orders:1.0 not found")
    )
    op = operator(make_job(), config_file=str(kubeconfig))
    context = task_context(op, run_id=RUN_ID)
    with pytest.raises(AirflowException):
        op.execute(context)
    execution = DraftExecution.model_validate(context["ti"].xcoms["draft_execution"])
    assert execution.status == "failed"
    assert execution.failure_reason == "image pull error: ErrImagePull: manifest for orders:1.0 not found"
    assert execution.actual_runtime_minutes == 0
    assert execution.resource_usage is None


def test_a_pod_that_never_starts_is_recorded_as_a_timeout(
    scripted_kube_emulator: KubeEmulator, kubeconfig: Path
) -> None:
    scripted_kube_emulator.add_script(PodScript(schedule=False))
    op = operator(make_job(), config_file=str(kubeconfig), schedule_timeout_seconds=1)
    context = task_context(op, run_id=RUN_ID)
    with pytest.raises(AirflowException):
        op.execute(context)
    execution = DraftExecution.model_validate(context["ti"].xcoms["draft_execution"])
    assert execution.status == "failed"
    assert execution.failure_reason.startswith("timeout: the pod never started (phase Pending")
    assert execution.actual_runtime_minutes == 0


SCRIPTED_REPORT = json.dumps(
    {
        "v": 1,
        "cpu_seconds": 30.0,
        "wall_seconds": 60.0,
        "peak_memory_bytes": 2**30,
        "checks": [{"name": "rows", "status": "passed"}],
        "records_processed": 10,
        "records_failed": 0,
        "data_watermark": None,
        "extra": None,
    }
)


def _permissions_used(emulator: KubeEmulator) -> set[tuple[str, str]]:
    """(resource, verb) of every request, in Kubernetes RBAC terms."""
    used = set()
    for request in emulator.requests:
        parts = request.path.strip("/").split("/")  # api v1 namespaces <ns> <resource> [<name> [<sub>]]
        resource = parts[4] + (f"/{parts[6]}" if len(parts) > 6 else "")
        named = len(parts) > 5
        verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}.get(request.method)
        if verb is None:
            verb = "get" if named else ("watch" if request.query.get("watch") else "list")
        used.add((resource, verb))
    return used


def _permissions_granted() -> set[tuple[str, str]]:
    manifest = Path(__file__).parents[2] / "deploy" / "rbac" / "draft-namespace-role.yaml"
    role = next(doc for doc in yaml.safe_load_all(manifest.read_text()) if doc["kind"] == "Role")
    assert role["metadata"]["namespace"] == DRAFT_NS
    return {
        (resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]
    }


def _deferred_run(op: DraftRunOperator) -> tuple[dict[str, Any], Any]:
    context = task_context(op, run_id=RUN_ID)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    event = asyncio.run(deferred.value.trigger.run().asend(None))
    try:
        returned = getattr(op, deferred.value.method_name)(context, event.payload)
    except AirflowException as error:
        returned = error
    return context["ti"].xcoms, returned


@pytest.mark.parametrize(
    "script",
    [
        PodScript(logs=("working",), exit_code=0, termination_message=SCRIPTED_REPORT, run_seconds=0.3),
        PodScript(logs=("working",), exit_code=4, termination_message=SCRIPTED_REPORT, run_seconds=0.3),
        PodScript(waiting_reason="ErrImagePull", waiting_message="not found"),
    ],
    ids=["success", "exit-code", "image-pull"],
)
def test_sync_and_deferrable_give_the_same_record(
    scripted_kube_emulator: KubeEmulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, script: PodScript
) -> None:
    scripted_kube_emulator.add_script(script)
    exit_code = 1 if script.waiting_reason else script.exit_code
    sync_op = operator(make_job(), config_file=str(kubeconfig))
    sync_context = task_context(sync_op, run_id=RUN_ID)
    try:
        sync_op.execute(sync_context)
    except AirflowException:
        assert exit_code != 0
    sync_record = sync_context["ti"].xcoms["draft_execution"]

    # Deferrable through the kubernetes_default connection: config_file plus a kube_config_path extra
    # would make the trigger fail ("mutually exclusive").
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}),
    )
    deferred_xcoms, returned = _deferred_run(operator(make_job(), deferrable=True))
    deferred_record = deferred_xcoms["draft_execution"]
    if exit_code == 0:
        assert returned == deferred_record
    else:
        assert isinstance(returned, AirflowException)

    def comparable(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in {"created_at", "pod_name"}}

    assert comparable(sync_record) == comparable(deferred_record)
    assert _permissions_used(scripted_kube_emulator) <= _permissions_granted()
    assert sync_record["status"] == ("completed" if exit_code == 0 else "failed")
    if script.waiting_reason:
        assert sync_record["failure_reason"] == "image pull error: ErrImagePull: not found"
        assert sync_record["resource_usage"] is None
    else:
        assert sync_record["actual_runtime_minutes"] == 1.0
        assert sync_record["resource_usage"] == {"avg_cpu_utilization": 0.5, "peak_memory_usage_gb": 1.0}


def test_production_phase_runs_in_the_jobs_namespace_with_its_own_resources(
    kube_emulator: KubeEmulator, kubeconfig: Path
) -> None:
    job = make_job(status="active", namespace="prod-ingestion-ns")
    op = operator(job, phase="production", config_file=str(kubeconfig), run_as_non_root=False)
    assert op.task_id == "run"
    xcoms, returned = run_sync(op)
    post = kube_emulator.find_requests("POST")[0]
    assert post.namespace == "prod-ingestion-ns"
    assert post.body["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert post.body["metadata"]["labels"]["sla-promotion/phase"] == "production"
    assert "draft_execution" not in xcoms
    assert xcoms["production_execution"] == returned
    assert returned["allocated_resources"] == {"cpu_cores": 1.0, "memory_gb": 2.0}


def test_run_as_non_root_and_a_job_file_path(tmp_path: Path) -> None:
    path = tmp_path / "orders_ingest.yaml"
    path.write_text(yaml.safe_dump(make_job().model_dump(mode="json", exclude_defaults=True)))
    op = DraftRunOperator(job=str(path), run_as_non_root=True)
    assert op.job.job_id == "orders_ingest"
    assert op.container_security_context["runAsNonRoot"] is True
    assert op.namespace == DRAFT_NS
    with pytest.raises(ValueError, match="no namespace"):
        DraftRunOperator(job=make_job(), phase="production")
    with pytest.raises(ValueError, match="do_xcom_push"):
        DraftRunOperator(job=make_job(), do_xcom_push=True)


MEASURED_JOB = textwrap.dedent(
    """
    import time
    from airflow_sla_promotion import job_report
    block = b"x" * (200 * 10**6)
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass
    job_report.report(checks=[{"name": "rows", "status": "passed"}], records_processed=200)
    """
)

DAG_FILE = '''
"""A draft DAG for one job, run by the test with dag.test()."""
from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_sla_promotion.operators.draft_run import DraftRunOperator

with DAG(
    "orders_ingest__draft",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    schedule=None,
    catchup=False,
    tags=["sla-promotion", "draft"],
):
    DraftRunOperator(
        job={job_path!r},
        config_file={kubeconfig!r},
        startup_check_interval_seconds=1,
        poll_interval=0.5,
    )
'''


def test_dag_test_run_in_local_process_mode_leaves_a_measured_record_in_the_metadata_db(
    airflow_db: Path, dags_folder: Path, kube_emulator: KubeEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    job_path = tmp_path / "orders_ingest.yaml"
    job_path.write_text(yaml.safe_dump(make_job(MEASURED_JOB).model_dump(mode="json", exclude_defaults=True)))
    dag_file = dags_folder / "orders_ingest__draft.py"
    dag_file.write_text(DAG_FILE.format(job_path=str(job_path), kubeconfig=str(kubeconfig)))
    try:
        dag = load_dag_file(dag_file, "orders_ingest__draft")
        dag_run = dag.test(logical_date=datetime(2026, 3, 1, tzinfo=UTC))
    finally:
        dag_file.unlink()
    assert dag_run.state == "success"

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id,
                key="draft_execution",
                dag_ids="orders_ingest__draft",
                task_ids="draft_run",
            )
        ).one()
        record = XComModel.deserialize_value(row)
    execution = DraftExecution.model_validate(record)
    assert execution.execution_id == dag_run.run_id
    assert execution.status == "completed"
    assert execution.try_number == 1
    usage = execution.resource_usage
    assert usage is not None
    # 200 MB touched by the job: the reported peak is that plus the interpreter (tolerance +150 MB).
    assert 200e6 / 2**30 <= usage.peak_memory_usage_gb <= 350e6 / 2**30
    # At least the 0.5 s CPU loop, and a single thread never averages more than one core.
    assert 0 < usage.avg_cpu_utilization <= 1.05
    assert execution.actual_runtime_minutes * 60 >= 0.5
    assert execution.records_processed == 200
    assert [pod["metadata"]["name"] for pod in kube_emulator.pods()] == []
