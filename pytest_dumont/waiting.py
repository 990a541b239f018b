"""One way to wait for something to become true: poll a probe on the injected clock, backing off, until a deadline.

The wait for running, the destroy confirmations, the wait for SSH, an xdist worker's wait for the controller's
instance and a state file's lock all wait through ``poll``, so that tests and replays never sleep for real and every
wait has a deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pytest_dumont.clock import Clock
from pytest_dumont.errors import WaitTimedOut as WaitTimedOut

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays between polls: ``first``, then times ``factor``, never above ``cap``."""

    first: float = 0.05
    factor: float = 1.5
    cap: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


def poll(
    probe: Callable[[], T | None],
    *,
    clock: Clock,
    deadline: float,
    backoff: Backoff = Backoff(),
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns something other than None, and return that.

    ``deadline`` is a ``clock.now()`` value. The probe is always called at least once, and once more at the deadline
    rather than a sleep past it. Exceptions in ``retry_on`` count as "not yet" (the last attempt's is handed to the
    caller's message); any other exception ends the wait at once.
    """
    started = clock.now()
    for attempts, delay in enumerate(backoff.delays(), start=1):
        last_error: BaseException | None = None
        try:
            result = probe()
        except retry_on as exc:
            last_error = exc
        else:
            if result is not None:
                return result
        now = clock.now()
        if now >= deadline:
            raise WaitTimedOut(now - started, attempts, last_error)
        clock.sleep(min(delay, deadline - now))
    raise AssertionError("unreachable: Backoff.delays never ends")
