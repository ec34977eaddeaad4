"""Kubernetes resource quantities from cores and GiB, rounded up so a pod never gets less than asked."""

from __future__ import annotations

import math

# Products like 1.1 * 1000 come out as 1100.0000000000002; rounding to this many decimals first keeps
# float noise from adding a whole millicore or MiB.
_NOISE_DECIMALS = 6


def _ceil(value: float) -> int:
    return math.ceil(round(value, _NOISE_DECIMALS))


def cpu_quantity(cores: float) -> str:
    """CPU as a Kubernetes quantity, rounded up to whole millicores: 1.1 -> ``1100m``, 2 -> ``2``."""
    if not math.isfinite(cores) or cores <= 0:
        raise ValueError(f"cpu cores must be a positive number, got {cores!r}")
    millicores = _ceil(cores * 1000)
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def memory_quantity(gb: float) -> str:
    """Memory (GiB) as a Kubernetes quantity, rounded up to whole MiB: 2.2 -> ``2253Mi``, 2 -> ``2Gi``."""
    if not math.isfinite(gb) or gb <= 0:
        raise ValueError(f"memory (GiB) must be a positive number, got {gb!r}")
    mebibytes = _ceil(gb * 1024)
    if mebibytes % 1024 == 0:
        return f"{mebibytes // 1024}Gi"
    return f"{mebibytes}Mi"


def kubernetes_resources(
    cpu_cores: float, memory_gb: float, cpu_limit: bool = False
) -> dict[str, dict[str, str]]:
    """Requests and limits for a container: memory limit = memory request; a CPU limit only when asked.

    Without a CPU limit the container may use idle CPU on the node (no throttling); the memory limit
    equal to the request makes the pod's memory use predictable for the scheduler.
    """
    cpu = cpu_quantity(cpu_cores)
    memory = memory_quantity(memory_gb)
    limits = {"memory": memory}
    if cpu_limit:
        limits["cpu"] = cpu
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}
