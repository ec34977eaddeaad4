"""Benchmarks of the SLA promotion provider (`make bench` rewrites BENCHMARKS.md)."""

from __future__ import annotations
