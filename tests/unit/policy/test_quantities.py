"""Kubernetes quantities: rounded up, never truncated, immune to float noise."""

from __future__ import annotations

import pytest

from airflow_sla_promotion.policy.quantities import cpu_quantity, kubernetes_resources, memory_quantity


@pytest.mark.parametrize(
    ("cores", "expected"),
    [
        (1.1, "1100m"),
        (1.0 * 1.1, "1100m"),  # 1.1000000000000001
        (2, "2"),
        (2.0, "2"),
        (0.25, "250m"),
        (0.0001, "1m"),
        (1.0005, "1001m"),
        (0.1 + 0.2, "300m"),  # 0.30000000000000004
        (12.5, "12500m"),
    ],
)
def test_cpu_rounds_up_to_millicores(cores: float, expected: str) -> None:
    assert cpu_quantity(cores) == expected


@pytest.mark.parametrize(
    ("gb", "expected"),
    [
        (2.2, "2253Mi"),  # 2252.8 MiB rounded up
        (2, "2Gi"),
        (8.8, "9012Mi"),  # 9011.2 MiB
        (1.5, "1536Mi"),
        (2.0 * 1.1, "2253Mi"),
        (1 / 1024, "1Mi"),
        (0.25, "256Mi"),
    ],
)
def test_memory_rounds_up_to_mebibytes(gb: float, expected: str) -> None:
    assert memory_quantity(gb) == expected


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_non_positive_quantities_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        cpu_quantity(bad)
    with pytest.raises(ValueError, match="positive"):
        memory_quantity(bad)


def test_kubernetes_resources_memory_limit_equals_request_and_no_cpu_limit() -> None:
    assert kubernetes_resources(1.1, 2.2) == {
        "requests": {"cpu": "1100m", "memory": "2253Mi"},
        "limits": {"memory": "2253Mi"},
    }


def test_kubernetes_resources_cpu_limit_only_when_asked() -> None:
    resources = kubernetes_resources(2, 4, cpu_limit=True)
    assert resources["limits"] == {"memory": "4Gi", "cpu": "2"}
