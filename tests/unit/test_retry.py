"""Retry policy: what is retried, how long it waits (Retry-After honoured up to a cap), and never a create twice."""

from __future__ import annotations

import pytest

from pytest_dumont.clock import ManualClock
from pytest_dumont.errors import AuthenticationFailed, RateLimited, ServerError, VastApiError, VastConnectionError
from pytest_dumont.vast.retry import RequestNotSent, RetryPolicy


def policy(clock: ManualClock, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0.0, **kw)


def failing(*errors):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return fn, calls


def test_retries_429_honouring_retry_after():
    clock = ManualClock()
    fn, calls = failing(RateLimited(429, None, "slow", retry_after=1.0), RateLimited(429, None, "slow", retry_after=2))
    assert policy(clock).call(fn) == "ok"
    assert len(calls) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_retry_after_beyond_the_cap_is_not_waited_for():
    clock = ManualClock()
    fn, calls = failing(RateLimited(429, None, "slow", retry_after=3600))
    with pytest.raises(RateLimited):
        policy(clock, retry_after_cap=60).call(fn)
    assert len(calls) == 1 and clock.sleeps == []


def test_search_quota_is_never_retried():
    fn, calls = failing(RateLimited(429, "search_quota_exceeded", "quota", retry_after=None))
    with pytest.raises(RateLimited):
        policy(ManualClock()).call(fn)
    assert len(calls) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_retries_gateway_errors_with_growing_backoff(status):
    clock = ManualClock()
    fn, calls = failing(*[ServerError(status, None, "bad gateway")] * 3)
    assert policy(clock, initial_wait=0.5).call(fn) == "ok"
    assert len(calls) == 4
    assert clock.sleeps == sorted(clock.sleeps) and clock.sleeps[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationFailed(401, "auth_error", "x"),
        VastApiError(400, "invalid_args", "x"),
        ServerError(500, None, "boom"),
    ],
)
def test_other_errors_are_answers_not_accidents(error):
    fn, calls = failing(error)
    with pytest.raises(type(error)):
        policy(ManualClock()).call(fn)
    assert len(calls) == 1


def test_gives_up_after_the_attempts():
    fn, calls = failing(*[ServerError(503, None, "down")] * 10)
    with pytest.raises(ServerError):
        policy(ManualClock(), attempts=3).call(fn)
    assert len(calls) == 3


def test_gives_up_after_the_total_time():
    clock = ManualClock()
    fn, calls = failing(*[ServerError(503, None, "down")] * 50)
    with pytest.raises(ServerError):
        policy(clock, attempts=50, total_seconds=10, initial_wait=1, max_wait=4).call(fn)
    assert clock.now() <= 10 + 4
    assert len(calls) < 50


def test_a_create_is_retried_only_when_it_never_reached_the_server():
    fn, calls = failing(ServerError(503, None, "maybe created"))
    with pytest.raises(ServerError):
        policy(ManualClock()).call(fn, idempotent=False)
    assert len(calls) == 1
    fn, calls = failing(VastConnectionError("read timed out"))
    with pytest.raises(VastConnectionError):
        policy(ManualClock()).call(fn, idempotent=False)
    assert len(calls) == 1
    fn, calls = failing(RequestNotSent("refused"), RateLimited(429, None, "slow", retry_after=0))
    assert policy(ManualClock()).call(fn, idempotent=False) == "ok"
    assert len(calls) == 3
