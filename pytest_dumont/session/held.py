"""What a test held that Vast.ai can take from it: interruptible instances, checked when the test ends.

A test whose instance is outbid fails on whatever its next SSH command raised (a closed channel, an EOF). The
check after its call names the cause instead, ``InstancePreempted``, and keeps the test's own error as the cause
(``--tb=long`` shows both); a test that passed before it noticed gets the error at teardown. Either way the instance
is destroyed by the check, so the pool rents afresh for the next test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_dumont.errors import InstancePreempted
from pytest_dumont.session import error_display

Check = Callable[[], InstancePreempted | None]
CHECKS = pytest.StashKey[list[Check]]()


def watch(item: pytest.Item, check: Check) -> None:
    """Run ``check`` when ``item``'s call fails and at its teardown (a fixture holding an interruptible instance)."""
    item.stash.setdefault(CHECKS, []).append(check)


def preempted(item: pytest.Item) -> InstancePreempted | None:
    """The first preemption the item's checks find (each finds one once: it destroys the instance it names)."""
    for check in item.stash.get(CHECKS, []):
        error = check()
        if error is not None:
            return error
    return None


def explain_failure(item: pytest.Item, call: pytest.CallInfo[Any], report: pytest.TestReport) -> bool:
    """A failed call whose instance was preempted meanwhile: report ``InstancePreempted`` (caused by the test's own
    error) in its place. True when it did."""
    if call.excinfo is None or CHECKS not in item.stash:
        return False
    error = preempted(item)
    if error is None:
        return False
    original = call.excinfo.value

    def raise_it() -> None:
        raise error from original

    named = pytest.CallInfo.from_call(raise_it, when="call")
    assert named.excinfo is not None  # raise_it always raises
    report.longrepr = item.repr_failure(named.excinfo)
    first = str(original).splitlines()[0] if str(original) else ""
    error_display.shorten(item, named, report, also=[f"the test's own error: {type(original).__name__}: {first}"])
    return True


def after_test(item: pytest.Item) -> None:
    """At teardown: raise ``InstancePreempted`` for a preemption its call did not report (a test that passed)."""
    error = preempted(item)
    if error is not None:
        raise error
