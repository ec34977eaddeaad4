"""Plain-text tables of CLI answers for people (``--format table``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

_CRITERIA_COLUMNS = (
    ("min_successful_runs", "required", "actual"),
    ("min_evaluation_period", "required_days", "actual_days"),
    ("performance_variance", "max_allowed", "actual"),
    ("sla_compliance", "min_required", "actual"),
    ("overall_score", "min_required", "actual"),
    ("target_namespace", "allowed", "requested"),
)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and all(not isinstance(item, dict | list) for item in value):
        return ", ".join(_text(item) for item in value) or "-"
    return str(value)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if isinstance(data, dict) and data:
        for key, value in data.items():
            rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and any(isinstance(item, dict | list) for item in data):
        for index, item in enumerate(data):
            rows.extend(_flatten(item, f"{prefix}[{index}]"))
    else:
        rows.append((prefix, _text(data) if data != {} else "-"))
    return rows


def table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Rows under headers, columns padded to their widest cell."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, tuple("-" * width for width in widths), *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        for line in lines
    )


def _decision(data: dict[str, Any]) -> str:
    decision = data.get("promotion_decision") or {}
    criteria = data.get("criteria_results") or {}
    parts = [
        f"job {data.get('job_id')}: {str(decision.get('decision', '?')).upper()} — {decision.get('message', '')}",
        "",
        table(
            ("criterion", "threshold", "measured", "passed"),
            [
                (
                    name,
                    _text(criteria[name].get(bound)),
                    _text(criteria[name].get(actual)),
                    _text(criteria[name].get("passed")),
                )
                for name, bound, actual in _CRITERIA_COLUMNS
                if isinstance(criteria.get(name), dict)
            ],
        ),
    ]
    if decision.get("decision") == "promote":
        parts += [
            "",
            f"target namespace: {decision.get('target_namespace')}   confidence: {_text(decision.get('confidence'))}",
        ]
        adjustments = decision.get("resource_adjustments") or {}
        if adjustments:
            parts += [
                "",
                table(
                    ("resource", "current", "recommended", "reason"),
                    [
                        (
                            name,
                            _text(item.get("current")),
                            _text(item.get("recommended")),
                            str(item.get("reason", "")),
                        )
                        for name, item in adjustments.items()
                    ],
                ),
            ]
    for item in decision.get("recommendations") or []:
        parts += [
            "",
            f"* {item.get('issue')}",
            f"  recommendation: {item.get('recommendation')}",
            f"  action: {item.get('action')}",
        ]
    return "\n".join(parts)


def render(data: Any) -> str:
    """A readable rendering: a criteria table for decisions, else one ``field  value`` row per leaf."""
    if isinstance(data, dict) and "criteria_results" in data and "promotion_decision" in data:
        return _decision(data)
    return table(("field", "value"), _flatten(data))
