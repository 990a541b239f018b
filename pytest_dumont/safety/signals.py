"""Teardown that does not depend on pytest reaching its finalizers.

pytest installs no SIGTERM handler (pytest#5243) and a cancelled CI job sends SIGINT, then SIGTERM, then kills.
While instances exist, SIGTERM and SIGHUP are turned into ``KeyboardInterrupt`` so that pytest unwinds through
its session teardown exactly as on Ctrl-C, and ``atexit`` destroys whatever is still live if even that was skipped.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_HANDLED = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class SignalGuard:
    """Turns SIGTERM/SIGHUP into KeyboardInterrupt while armed, and runs ``cleanup`` at interpreter exit."""

    def __init__(self, cleanup: Callable[[], None]) -> None:
        self._cleanup = cleanup
        self._previous: dict[int, Any] = {}
        self._armed = False
        self._cleaned = False

    def arm(self) -> None:
        """Install the handlers (main thread only; elsewhere only the atexit backstop applies)."""
        if self._armed:
            return
        self._armed = True
        atexit.register(self.run_cleanup)
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _HANDLED:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def disarm(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self._armed:
            atexit.unregister(self.run_cleanup)
        self._armed = False

    def run_cleanup(self) -> None:
        if not self._cleaned:
            self._cleaned = True
            self._cleanup()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Ignore repeats while unwinding: a second SIGTERM must not interrupt the destroy it caused.
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}: destroying the session's instances")
