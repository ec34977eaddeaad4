"""Airflow provider that tests new ingestion jobs in a draft namespace and promotes or rejects them."""

from __future__ import annotations

__version__ = "0.1.0"
