"""pytest entry point (wiring only). Filled in by the fixtures/markers work."""

from __future__ import annotations
