"""A standalone emulator, as users run one (``python -m pytest_dumont.emulator``): its own process, so its clock and
its threads are not this one's, and it outlives the pytest sessions run against it. Its billing ledger
(``GET /_emulator/ledger/``) is the truth the reports are held to."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class StandaloneEmulator:
    url: str
    api_key: str
    process: subprocess.Popen[str]

    def ledger(self) -> dict[int, dict[str, Any]]:
        """The emulator's own bill, per instance id."""
        with urllib.request.urlopen(f"{self.url}/_emulator/ledger/", timeout=30) as answer:  # noqa: S310 - loopback
            data = json.loads(answer.read())
        return {int(e["id"]): e for e in data["instances"]}


@pytest.fixture(scope="session")
def standalone_emulator() -> Iterator[StandaloneEmulator]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_dumont.emulator", "--port", "0", "--quiet"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        key = process.stdout.readline().split()[-1]
        yield StandaloneEmulator(url, key, process)
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The full campaign runs only when asked for (``-m campaign``): the suite runs its short slice."""
    if "campaign" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="the full reconciliation campaign: run it with -m campaign")
    for item in items:
        if item.get_closest_marker("campaign") is not None:
            item.add_marker(skip)
