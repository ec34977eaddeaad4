"""CLI commands over pure policy: plan, score, sla, decide, validate, schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands (filled in by the policy work)."""
