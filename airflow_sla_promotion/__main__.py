"""Entry point for ``python -m airflow_sla_promotion``."""

from __future__ import annotations

from airflow_sla_promotion.cli import main

raise SystemExit(main())
