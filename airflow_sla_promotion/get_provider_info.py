"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_sla_promotion import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-sla-promotion",
        "name": "SLA Promotion",
        "description": "Runs new ingestion jobs in a draft Kubernetes namespace, scores every run against its "
        "SLA and promotes the job to production or rejects it with a feedback report.",
        "versions": [__version__],
        "integrations": [{"integration-name": "SLA Promotion", "tags": ["software"]}],
        "operators": [
            {
                "integration-name": "SLA Promotion",
                "python-modules": [
                    "airflow_sla_promotion.operators.draft_run",
                    "airflow_sla_promotion.operators.promotion",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "SLA Promotion",
                "python-modules": ["airflow_sla_promotion.sensors.draft_runs"],
            }
        ],
        "triggers": [
            {
                "integration-name": "SLA Promotion",
                "python-modules": ["airflow_sla_promotion.triggers.draft_runs"],
            }
        ],
        "hooks": [
            {
                "integration-name": "SLA Promotion",
                "python-modules": ["airflow_sla_promotion.hooks.airflow_api"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_sla_promotion.hooks.airflow_api.AirflowApiHook",
                "hook-name": "Airflow REST API",
                "connection-type": "airflow_api",
                "conn-fields": {
                    "token": {
                        "label": "Bearer token (instead of login/password)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "timeout": {"label": "Request timeout (seconds)", "schema": {"type": ["number", "null"]}},
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"host": "API base URL (e.g. http://airflow-api-server:8080)"},
                    "placeholders": {"host": "http://localhost:8080", "login": "admin"},
                },
            }
        ],
        "config": {
            "sla_promotion": {
                "description": "Options of the SLA promotion provider.",
                "options": {
                    "draft_namespace": {
                        "description": "Kubernetes namespace in which draft runs execute.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "draft-ingestion-ns",
                    },
                    "allowed_target_namespaces": {
                        "description": "Comma-separated namespaces a job may be promoted to.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "prod-ingestion-ns,prod-batch-ns",
                        "default": "prod-ingestion-ns",
                    },
                    "jobs_folder": {
                        "description": "Folder of job YAML files. Empty: ``jobs`` beside the DAG file that "
                        "builds the DAGs. Promotion rewrites these files, so it must be shared and writable.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/dags/jobs",
                        "default": "",
                    },
                    "allow_relaxed_criteria": {
                        "description": "Let a job's ``promotion:`` block relax the provider's criteria "
                        "(fewer runs, shorter period, lower scores). Off in production.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": None,
                        "default": "False",
                    },
                    "max_draft_extensions": {
                        "description": "How many times the draft window may be extended when only "
                        "evidence (runs, period) was short, before the job is rejected.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": None,
                        "default": "2",
                    },
                },
            }
        },
    }
