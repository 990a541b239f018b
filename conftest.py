"""Repository-wide test set-up: every test starts hermetic, whatever the developer's shell holds."""

from __future__ import annotations

import os

import pytest

# Variables that would change what pytest-dumont does; a test that needs one sets it itself.
_LEAKY_PREFIXES = ("VAST_", "DUMONT_", "GITHUB_STEP_SUMMARY")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear VAST_* and DUMONT_* so that no test reads the developer's key or URL by accident."""
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def private_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The ledger file of live instances and watchdog logs go under a temporary directory, never the real home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
