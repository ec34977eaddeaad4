"""Airflow DAG file: the draft, promotion and production DAGs of every job in the jobs folder.

Drop this file into the DAGs folder. The jobs folder is ``[sla_promotion] jobs_folder``
(``AIRFLOW__SLA_PROMOTION__JOBS_FOLDER``); when it is empty, the ``jobs`` folder beside this file.
One DAG per job and phase (``<job_id>__draft``, ``<job_id>__promotion``, ``<job_id>``), and a
placeholder ``<stem>__invalid`` for a job file that cannot be loaded (see docs/dag-factory.md).
"""

from __future__ import annotations

from pathlib import Path

from airflow_sla_promotion.config import load_settings
from airflow_sla_promotion.dag_factory import build_dags

_settings = load_settings()
_jobs_folder = _settings.jobs_folder or str(Path(__file__).resolve().parent / "jobs")

# The DAG processor collects the DAG objects found in this module's namespace.
globals().update(build_dags(_jobs_folder, settings=_settings))
