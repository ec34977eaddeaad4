"""Integration-test setup: the Kubernetes emulator fixtures, available to every test in this folder."""

from __future__ import annotations

# pytest only honours ``pytest_plugins`` in the rootdir's conftest, so the fixtures are imported here.
from tests.integration.kube_fixtures import (  # noqa: F401
    kube_emulator,
    kubeconfig,
    kubernetes_default_connection,
    scripted_kube_emulator,
)
