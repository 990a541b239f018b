"""Fixtures of the reliability tests: a state directory per test, so no ledger file outside tmp is ever touched."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ledger file and watchdog logs under tmp_path, for this process and every pytest it starts."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("DUMONT_LEDGER", str(state / "pytest-dumont" / "ledger.json"))
    return state / "pytest-dumont"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The full campaigns (marker ``chaos``) take tens of minutes: they run only when ``-m`` names them."""
    if "chaos" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="the full fault campaign: run it with -m chaos")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)
