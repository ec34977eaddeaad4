"""Reads the ``[sla_promotion]`` options (Airflow config or ``AIRFLOW__SLA_PROMOTION__*`` environment)."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_sla_promotion.spec import DEFAULT_DRAFT_NAMESPACE, DEFAULT_TARGET_NAMESPACE

SECTION = "sla_promotion"


@dataclass(frozen=True)
class ProviderSettings:
    """The provider's options, resolved once and handed to pure policy as plain values."""

    draft_namespace: str = DEFAULT_DRAFT_NAMESPACE
    allowed_target_namespaces: tuple[str, ...] = (DEFAULT_TARGET_NAMESPACE,)
    jobs_folder: str | None = None
    allow_relaxed_criteria: bool = False
    max_draft_extensions: int = 2

    @property
    def validation_context(self) -> dict[str, bool]:
        """Context for ``IngestionJob.model_validate``."""
        return {"allow_relaxed_criteria": self.allow_relaxed_criteria}


def split_namespaces(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def load_settings() -> ProviderSettings:
    """Read the options through Airflow's ``conf`` (which also honours the environment)."""
    from airflow.providers.common.compat.sdk import conf

    defaults = ProviderSettings()
    return ProviderSettings(
        draft_namespace=conf.get(SECTION, "draft_namespace", fallback=defaults.draft_namespace),
        allowed_target_namespaces=split_namespaces(
            conf.get(
                SECTION, "allowed_target_namespaces", fallback=",".join(defaults.allowed_target_namespaces)
            )
        ),
        jobs_folder=conf.get(SECTION, "jobs_folder", fallback="") or None,
        allow_relaxed_criteria=conf.getboolean(SECTION, "allow_relaxed_criteria", fallback=False),
        max_draft_extensions=conf.getint(SECTION, "max_draft_extensions", fallback=2),
    )
