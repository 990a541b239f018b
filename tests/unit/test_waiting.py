"""``poll``: the one wait, on the injected clock."""

from __future__ import annotations

import pytest

from pytest_dumont.clock import ManualClock
from pytest_dumont.waiting import Backoff, WaitTimedOut, poll


def test_returns_the_first_answer_and_backs_off_until_then():
    clock = ManualClock()
    answers = iter([None, None, None, "up"])
    assert poll(lambda: next(answers), clock=clock, deadline=100.0, backoff=Backoff(0.1, 2.0, 0.3)) == "up"
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.3])


def test_never_sleeps_past_the_deadline_and_probes_once_more_there():
    clock = ManualClock()
    calls = []
    with pytest.raises(WaitTimedOut) as info:
        poll(lambda: calls.append(clock.now()), clock=clock, deadline=1.0, backoff=Backoff(0.4, 1.0, 0.4))
    assert clock.sleeps == pytest.approx([0.4, 0.4, 0.2])
    assert calls[-1] == pytest.approx(1.0)
    assert info.value.attempts == 4 and info.value.last_error is None


def test_a_retried_error_is_handed_over_only_when_the_last_attempt_raised():
    clock = ManualClock()

    def refused() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(WaitTimedOut) as info:
        poll(refused, clock=clock, deadline=0.2, retry_on=(ConnectionRefusedError,))
    assert isinstance(info.value.last_error, ConnectionRefusedError)

    outcomes = iter([ConnectionRefusedError("early")])

    def recovers_to_not_yet() -> None:
        error = next(outcomes, None)
        if error:
            raise error

    with pytest.raises(WaitTimedOut) as info:
        poll(recovers_to_not_yet, clock=ManualClock(), deadline=0.2, retry_on=(ConnectionRefusedError,))
    assert info.value.last_error is None


def test_any_other_error_ends_the_wait_at_once():
    clock = ManualClock()

    def broken() -> None:
        raise ValueError("not a waiting matter")

    with pytest.raises(ValueError, match="not a waiting matter"):
        poll(broken, clock=clock, deadline=10.0, retry_on=(ConnectionRefusedError,))
    assert clock.sleeps == []
