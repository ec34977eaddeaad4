"""Shared helpers of the CLI commands: errors, JSON/table output."""

from __future__ import annotations

import contextvars
import json
import sys
from typing import Any, TextIO

from pydantic import BaseModel

#: Where answers go: the real stdout, saved by ``main`` before it sends everything else printed on
#: stdout (Airflow's log lines while its config loads, connection lookups, hook retries) to stderr.
ANSWER_STREAM: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar("answer_stream", default=None)


class CliError(Exception):
    """Invalid input or a refused action: printed on stderr, exit code 2, never a traceback."""


def emit(answer: BaseModel | dict[str, Any] | list[Any], fmt: str = "json") -> None:
    """Print an answer as JSON (default) or as a readable table."""
    data = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    stream = ANSWER_STREAM.get() or sys.stdout
    if fmt == "table":
        from airflow_sla_promotion.cli.tables import render

        print(render(data), file=stream)
        return
    json.dump(data, stream, indent=2, sort_keys=False, default=str)
    stream.write("\n")
    stream.flush()
