"""Helpers for the scale tests: inner pytest runs pointed at an outer emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

InnerArgs = Callable[..., list[str]]


@pytest.fixture
def inner(monkeypatch: pytest.MonkeyPatch) -> InnerArgs:
    """Arguments pointing an inner run at ``emulator``, so the outer test can read its history afterwards."""

    def args(emulator: Any, *extra: str) -> list[str]:
        monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
        monkeypatch.setenv("INNER_API", emulator.url)
        for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "DUMONT_JSON"):
            monkeypatch.delenv(name, raising=False)
        mode = ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}"]
        return [*mode, "-p", "no:randomly", "-p", "no:benchmark", *extra]

    return args
