"""Helpers of the reliability tests: poll with a deadline (never sleep to synchronise) and record measured figures."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "the condition") -> T:
    """Poll ``condition`` until it returns something truthy, or fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def record_figure(kind: str, **data: Any) -> None:
    """Append a measurement to $PYTEST_DUMONT_FIGURES (JSON lines), read by bench/reliability_figures.py."""
    target = os.environ.get("PYTEST_DUMONT_FIGURES")
    if target:
        with Path(target).open("a") as out:
            out.write(json.dumps({"kind": kind, **data}) + "\n")
