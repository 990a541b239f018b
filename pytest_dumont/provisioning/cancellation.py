"""Stopping one provisioning call from another thread, without touching the provisioner others share.

A session interrupted while an instance boots on a thread (prewarming, xdist's shared rental) must not wait for the
boot. The cancellation is handed to that one ``Provisioner.provision`` call: its waits end in ``KeyboardInterrupt``
and it refuses its next create, so it unwinds through its destroy path. Teardowns running meanwhile on other threads
(the pool's close, the spend meter) wait on the provisioner's own clock and are never cut short.
"""

from __future__ import annotations

import threading

from pytest_dumont.clock import Clock


class Cancellation:
    """A one-way switch for one provisioning call: once cancelled, the call's waits and next create raise."""

    def __init__(self, reason: str = "the session is ending") -> None:
        self.reason = reason  # what the report says about the instance given up
        self._event = threading.Event()

    def cancel(self, reason: str | None = None) -> None:
        if reason is not None and not self._event.is_set():
            self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if cancelled: called before a create and once one answered."""
        if self._event.is_set():
            raise self.interrupt()

    def clock(self, clock: Clock) -> Clock:
        """``clock`` for this call's waits: a sleep ends at once, in ``KeyboardInterrupt``, when cancelled."""
        return _CancellableClock(clock, self)

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def interrupt(self) -> KeyboardInterrupt:
        return KeyboardInterrupt(f"{self.reason}: provisioning in the background was cancelled")


class _CancellableClock:
    def __init__(self, clock: Clock, cancellation: Cancellation) -> None:
        self._clock = clock
        self._cancellation = cancellation

    def now(self) -> float:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        if self._cancellation.wait(max(0.0, seconds)):
            raise self._cancellation.interrupt()
