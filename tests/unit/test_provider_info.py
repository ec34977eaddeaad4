"""The provider registers itself with Airflow: entry point, modules, connection type, config section."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from airflow_sla_promotion import __version__
from airflow_sla_promotion.get_provider_info import get_provider_info


def _modules(info: dict, kind: str) -> list[str]:
    return [module for group in info[kind] for module in group["python-modules"]]


def test_entry_point_resolves_to_get_provider_info() -> None:
    (entry,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_sla")
    ]
    assert entry.load() is get_provider_info


def test_every_listed_module_and_hook_class_imports() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-sla-promotion"
    assert info["versions"] == [__version__]
    for kind in ("operators", "sensors", "triggers", "hooks"):
        for module in _modules(info, kind):
            importlib.import_module(module)
    (connection,) = info["connection-types"]
    module_name, _, class_name = connection["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module_name), class_name)
    assert hook.conn_type == connection["connection-type"] == "airflow_api"
    assert hook.default_conn_name == "airflow_api_default"


def test_airflow_sees_the_provider_its_connection_type_and_config_section() -> None:
    from airflow.configuration import conf
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-sla-promotion"].version == __version__
    assert "airflow_api" in manager.hooks
    manager.initialize_providers_configuration()
    assert conf.get("sla_promotion", "draft_namespace") == "draft-ingestion-ns"
    assert conf.get("sla_promotion", "allowed_target_namespaces") == "prod-ingestion-ns"
    assert conf.getboolean("sla_promotion", "allow_relaxed_criteria") is False
