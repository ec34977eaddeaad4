"""Pure promotion policy: planning, scoring, SLA tracking, decisions and feedback (no Airflow, no I/O)."""

from __future__ import annotations
