"""Replay time: a clock that moves only by recorded durations and by sleeps, so a replay never waits."""

from __future__ import annotations

import threading

from pytest_dumont.clock import SystemClock


class VirtualClock(SystemClock):
    """Starts at 0 and advances by what the cassettes recorded; ``sleep`` returns at once.

    A ``SystemClock`` subclass so that it can stand wherever the session's clock does (signals may still
    ``interrupt`` it, which changes nothing since it never blocks).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._now = 0.0
        self.slept = 0.0  # virtual seconds slept: what a live run would have waited for

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds
                self.slept += seconds

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, as a recorded HTTP call or SSH command took them."""
        if seconds > 0:
            with self._lock:
                self._now += seconds
