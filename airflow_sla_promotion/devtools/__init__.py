"""Development tools for tests and the demo; never imported by production code paths."""

from __future__ import annotations
