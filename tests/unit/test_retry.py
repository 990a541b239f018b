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


def test_a_destroy_retries_for_its_own_window_not_the_other_calls():
    # Every 4 s: another call gives up once its 10 s have passed; a destroy goes on within its 300 s (the default).
    other_clock, destroy_clock = ManualClock(), ManualClock()
    other, other_calls = failing(*[ServerError(503, None, "down")] * 10)
    with pytest.raises(ServerError):
        policy(other_clock, total_seconds=10.0, initial_wait=4.0, max_wait=4.0).call(other)
    destroy, destroy_calls = failing(*[ServerError(503, None, "down")] * 5)
    teardown = policy(destroy_clock, total_seconds=10.0, initial_wait=4.0, max_wait=4.0).for_teardown()
    assert teardown.call(destroy) == "ok"
    assert (len(other_calls), other_clock.now()) == (4, 12.0)
    assert (len(destroy_calls), destroy_clock.now()) == (6, 20.0)


def test_a_shorter_teardown_window_hands_a_dead_api_over_sooner():
    # --dumont-teardown-retry-seconds=5: the destroy gives up once 5 s have passed, well before its eight attempts.
    clock = ManualClock()
    destroy, calls = failing(*[ServerError(503, None, "down")] * 10)
    with pytest.raises(ServerError):
        policy(clock, initial_wait=2.0, max_wait=2.0, teardown_seconds=5.0).for_teardown().call(destroy)
    assert (len(calls), clock.now()) == (4, 6.0)
