"""Replay time: a clock that moves only by recorded durations and by sleeps, so a replay never waits."""

from __future__ import annotations

import threading


class VirtualClock:
    """Starts at 0 and advances by what the cassettes recorded; ``sleep`` returns at once (a ``clock.Clock``)."""

    def __init__(self) -> None:
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
