"""docker-compose.yaml: Airflow 3's service layout with the provider installed (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
_DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with every variable unset, as on a fresh checkout."""
    return _DEFAULTED.sub(lambda match: match.group(2), value).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def test_services_of_airflow_3(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == AIRFLOW_SERVICES | {"airflow-init", "postgres"}
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert "healthcheck" in services[name]


def test_provider_image_mounts_and_environment(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES | {"airflow-init"}:
        service = compose["services"][name]
        dockerfile = REPO_ROOT / service["build"]["dockerfile"]
        assert dockerfile.is_file()
        mounts = [_interpolate(volume) for volume in service["volumes"]]
        assert "./dags:/opt/airflow/dags" in mounts, "promotion rewrites dags/jobs: mounted read-write"
        assert "~/.kube/config:/opt/airflow/kube/config:ro" in mounts
        env = {key: _interpolate(str(value)) for key, value in service["environment"].items()}
        assert env["AIRFLOW__SLA_PROMOTION__JOBS_FOLDER"] == "/opt/airflow/dags/jobs"
        assert env["AIRFLOW__SLA_PROMOTION__ALLOW_RELAXED_CRITERIA"] == "False"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        api = json.loads(env["AIRFLOW_CONN_AIRFLOW_API_DEFAULT"])
        assert api["conn_type"] == "airflow_api"
        assert api["host"] == "http://airflow-apiserver:8080"
        assert api["login"]
        assert api["password"]
        kubernetes = json.loads(env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
        assert kubernetes["extra"]["kube_config_path"] == "/opt/airflow/kube/config"


def test_dockerfile_copies_only_what_exists() -> None:
    dockerfile = (REPO_ROOT / "deploy" / "compose" / "Dockerfile").read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            for source in sources:
                assert (REPO_ROOT / source).exists(), source


def test_docker_compose_validates_the_file() -> None:
    """Debian's docker-compose checks the file against the Compose schema without an engine."""
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true: docker-compose is missing (.ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
