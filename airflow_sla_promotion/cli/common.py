"""Shared helpers of the CLI commands: errors, JSON/table output."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel


class CliError(Exception):
    """Invalid input or a refused action: printed on stderr, exit code 2, never a traceback."""


def emit(answer: BaseModel | dict[str, Any] | list[Any], fmt: str = "json") -> None:
    """Print an answer as JSON (default) or as a readable table."""
    data = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    if fmt == "table":
        from airflow_sla_promotion.cli.tables import render

        print(render(data))
        return
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
