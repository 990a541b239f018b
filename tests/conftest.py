"""Fixtures shared by the suite: emulators started per test, on loopback, torn down whatever the test did."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

MakeEmulator = Callable[..., Any]


@pytest.fixture
def make_emulator() -> Iterator[MakeEmulator]:
    """Start bundled emulators with any ``Emulator`` arguments; all are stopped after the test."""
    from pytest_dumont.emulator import Emulator

    started: list[Any] = []

    def make(**kwargs: Any) -> Any:
        emulator = Emulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def vast_emulator(make_emulator: MakeEmulator) -> Any:
    """A fast-profile emulator with real SSH servers."""
    return make_emulator()
