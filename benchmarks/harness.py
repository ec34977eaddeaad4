"""Runs benchmark cases in fresh processes, takes medians and renders BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def run_case(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    cwd: str | None = None,
) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; it prints one JSON object as its last line.

    ``cwd`` comes first on the process's ``sys.path``: a folder holding another version of the package
    runs that version.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
        cwd=cwd,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{completed.stderr[-4000:]}")
    last = [line for line in completed.stdout.splitlines() if line.startswith("{")][-1]
    return dict(json.loads(last))


def median_of(module: str, *args: str, repeats: int = REPEATS, **kwargs: Any) -> dict[str, Any]:
    """Median of every numeric field over ``repeats`` fresh-process runs (other fields from the first)."""
    return median([run_case(module, *args, **kwargs) for _ in range(repeats)])


@dataclass(frozen=True)
class Case:
    """One benchmark process: ``python -m module args`` with extra environment."""

    label: str
    module: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 900
    cwd: str | None = None


def run_interleaved(cases: list[Case], repeats: int = REPEATS) -> dict[str, dict[str, Any]]:
    """Median per case over ``repeats`` rounds; each round runs every case once, in order, each in a fresh
    process, so a noisy spell on a shared machine hits all sides of a comparison alike."""
    samples: dict[str, list[dict[str, Any]]] = {case.label: [] for case in cases}
    for _ in range(repeats):
        for case in cases:
            samples[case.label].append(
                run_case(case.module, *case.args, env=case.env, timeout=case.timeout, cwd=case.cwd)
            )
    return {label: median(runs) for label, runs in samples.items()}


def median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric field over the samples (other fields from the first); ``repeats`` added."""
    result = dict(samples[0])
    for key, value in samples[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            result[key] = statistics.median(sample[key] for sample in samples)
    result["repeats"] = len(samples)
    result["samples"] = samples
    return result


@dataclass
class Measure:
    """One row of BENCHMARKS.md: what was measured, its goal, what it is compared with, and the verdict."""

    name: str
    value: str
    goal: str
    compared_with: str
    met: bool | None
    details: list[str] = field(default_factory=list)


def machine_line() -> str:
    """Cores, Python, Airflow and provider versions, OS."""
    import importlib.metadata as md

    airflow = md.version("apache-airflow")
    kpo = md.version("apache-airflow-providers-cncf-kubernetes")
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, apache-airflow {airflow}, "
        f"cncf-kubernetes {kpo}, {platform.system()} {platform.machine()}"
    )
