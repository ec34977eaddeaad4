"""CLI commands for audited manual overrides: promote, reject, rollback, resubmit, history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands (filled in by the config-store work)."""
