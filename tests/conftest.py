"""Fixtures shared by the suite: emulators started per test, on loopback, torn down whatever the test did."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pytest_dumont.cassettes
import pytest_dumont.emulator
import pytest_dumont.reporting

# Imported here, in the outer session, on purpose: pytester's in-process runs drop the modules an inner run imported,
# and re-importing cryptography's Python layer over its already-loaded Rust bindings breaks isinstance checks.
# The modules holding a StashKey too: after an inner run drops one, ``from pytest_dumont.session import prewarm`` still
# finds the old module on the package while ``import pytest_dumont.session.prewarm`` loads a new one, and the two
# keys differ.
import pytest_dumont.safety.budget
import pytest_dumont.secrets.check
import pytest_dumont.session.prewarm
import pytest_dumont.session.xdist
import pytest_dumont.ssh.connect
import pytest_dumont.ssh.keys
import pytest_dumont.vast.client  # noqa: F401  (requests: the plugin imports it only when renting)

MakeEmulator = Callable[..., Any]


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[Any]:
    """The event loop thread emulated SSH servers run on, one per test session."""
    from pytest_dumont.emulator.loop import LoopThread

    loop = LoopThread()
    loop.start()
    yield loop
    loop.stop()


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


@pytest.fixture
def no_network_no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every socket connect and every real sleep fails the (in-process) run; returns the connects attempted."""
    import socket
    import time

    import pytest_dumont.clock

    attempts: list[object] = []

    def no_connect(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise AssertionError(f"replay opened a connection to {address}")

    def no_sleep(self: object, seconds: float) -> None:
        raise AssertionError(f"replay slept {seconds} s for real")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(pytest_dumont.clock.SystemClock, "sleep", no_sleep)
    monkeypatch.setattr(time, "sleep", lambda seconds: no_sleep(None, seconds))
    return attempts


@pytest.fixture(autouse=True)
def hermetic_ci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no CI of their own: CI=true changes what the plugin does (reuse refused, GitHub summaries), so a test
    that wants CI sets it itself, and the suite behaves the same on a laptop and in CI."""
    for name in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_JOB"):
        monkeypatch.delenv(name, raising=False)
