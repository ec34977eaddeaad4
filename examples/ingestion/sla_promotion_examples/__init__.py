"""Example ingestion jobs for the SLA promotion provider: small, real CSV -> SQLite loads with checks."""

from __future__ import annotations
