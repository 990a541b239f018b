"""The ``dumont`` command as a subprocess, with an environment of only what each test gives it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

RunDumont = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def dumont_env(tmp_path: Path) -> dict[str, str]:
    """The parent's environment without VAST_*/DUMONT_* (hermetic), with state under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "DUMONT_"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


@pytest.fixture
def run_dumont(dumont_env: dict[str, str]) -> RunDumont:
    """Run ``dumont ARGS...`` to completion; ``env`` adds to the hermetic environment."""

    def run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pytest_dumont.cli", *args]
        return subprocess.run(
            argv, capture_output=True, text=True, env={**dumont_env, **(env or {})}, timeout=120, check=False
        )

    return run
