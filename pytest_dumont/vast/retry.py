"""Named retry policies for the Vast.ai API, built on tenacity.

What is retried (as the official CLI does): HTTP 429, 502, 503 and 504, and connection errors. Never another 4xx:
those are answers, not accidents. A ``Retry-After`` header is honoured up to ``retry_after_cap``; a longer one is not
waited for (the error goes back to the caller at once, as the CLI does). Sleep and clock are injected so that tests
and replays never wait for real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import tenacity

from pytest_dumont.errors import RateLimited, ServerError, VastApiError, VastConnectionError
from pytest_dumont.errors import RequestNotSent as RequestNotSent

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
TEARDOWN_ATTEMPTS = 8
TEARDOWN_SECONDS = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one API call before giving up."""

    attempts: int = 5
    total_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 10.0
    jitter: float = 0.5
    retry_after_cap: float = 60.0
    teardown_seconds: float = TEARDOWN_SECONDS  # --dumont-teardown-retry-seconds: what ``for_teardown`` allows
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def for_teardown(self) -> RetryPolicy:
        """The policy a destroy runs under: the same sleep and clock, up to ``TEARDOWN_ATTEMPTS`` attempts within
        ``teardown_seconds``. A destroy that gives up leaves money running, so by default it tries longer than other
        calls; a team whose `dumont reap` step follows may prefer to hand a dead API over to it sooner."""
        return replace(self, attempts=max(self.attempts, TEARDOWN_ATTEMPTS), total_seconds=self.teardown_seconds)

    def call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``fn`` under this policy. Non-idempotent calls are retried only when the server never saw them."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts) | _stop_after_delay(self.total_seconds, self.clock),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda exc: self.should_retry(exc, idempotent=idempotent)),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn)

    def should_retry(self, exc: BaseException, *, idempotent: bool) -> bool:
        """Whether ``exc`` is worth another attempt."""
        if isinstance(exc, RequestNotSent):
            return True
        if isinstance(exc, RateLimited):
            # A 429 means the request was refused before it was acted on, so even a create may be retried.
            if exc.error == "search_quota_exceeded":
                return False  # the daily search quota resets at UTC midnight: retrying cannot help
            return exc.retry_after is None or exc.retry_after <= self.retry_after_cap
        if not idempotent:
            return False  # a 5xx or timeout on create may have created the instance: the caller must look
        if isinstance(exc, ServerError):
            return exc.status in RETRYABLE_STATUSES
        return isinstance(exc, VastConnectionError)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_cap)
        backoff = tenacity.wait_exponential_jitter(multiplier=self.initial_wait, max=self.max_wait, jitter=self.jitter)
        return float(backoff(state))


def _stop_after_delay(seconds: float, clock: Callable[[], float]) -> tenacity.stop.stop_base:
    """``stop_after_delay`` measured with the injected clock instead of tenacity's own."""

    class _Stop(tenacity.stop.stop_base):
        def __init__(self) -> None:
            self.started = clock()

        def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
            return clock() - self.started >= seconds

    return _Stop()


#: The default for every API call; a destroy runs under ``DEFAULT_POLICY.for_teardown()``.
DEFAULT_POLICY = RetryPolicy()

__all__ = ["DEFAULT_POLICY", "TEARDOWN_ATTEMPTS", "TEARDOWN_SECONDS", "RequestNotSent", "RetryPolicy", "VastApiError"]
