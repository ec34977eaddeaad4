"""Sensors of the SLA promotion provider."""

from __future__ import annotations
