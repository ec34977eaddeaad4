"""The ``sla-promotion`` command: policy answers and audited manual overrides, JSON on stdout."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

from airflow_sla_promotion import __version__
from airflow_sla_promotion.cli.common import ANSWER_STREAM, CliError

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from airflow_sla_promotion.cli import overrides, policy_commands

    parser = argparse.ArgumentParser(
        prog="sla-promotion",
        description="Plan, score and decide the promotion of ingestion jobs from draft to production.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    policy_commands.register(commands)
    overrides.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit 0 for any decision, 2 for invalid input (message on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # stdout carries only the answer: Airflow logs to stdout while its config loads and during
    # connection lookups, which would break the JSON a script reads.
    token = ANSWER_STREAM.set(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return int(args.handler(args) or 0)
    except CliError as error:
        print(f"sla-promotion: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader closed the pipe (`| head`): not an error of ours; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        ANSWER_STREAM.reset(token)
