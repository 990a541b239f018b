"""The session's provisioner is built complete, once: nothing sets its parts (budget, switch, watchers, failed
machines, status line, its client's retry policy) after it is made, so nothing changes under a rental in flight."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest

from pytest_dumont.provisioning.provisioner import Provisioner
from pytest_dumont.vast.client import VastClient

PARTS = {"budget", "watchers", "failed_machines", "deadman", "on_status", "client", "policy", "clock", "ledger"}
CHANGED = []


def _watch(cls):
    init, setattr_ = cls.__init__, cls.__setattr__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.__dict__["_built"] = True

    def __setattr__(self, name, value):
        if self.__dict__.get("_built") and name in PARTS:
            CHANGED.append(f"{cls.__name__}.{name}")
        setattr_(self, name, value)

    cls.__init__, cls.__setattr__ = __init__, __setattr__


_watch(Provisioner)
_watch(VastClient)


@pytest.fixture
def changed_after_build():
    return CHANGED
"""

TESTS = """
def test_rents(vast_gpu):
    assert vast_gpu.connection.run("true", hide=True).ok


def test_the_provisioner_was_built_with_its_parts(dumont_pool, changed_after_build):
    provisioner = dumont_pool.provisioner
    assert changed_after_build == []
    assert [type(w).__name__ for w in provisioner.watchers] == ["LedgerWatcher", "WatchdogWatcher", "LiveEvents"]
    assert provisioner.budget.limit_usd == 0.75
    assert provisioner.deadman.ttl_s == 20 * 60
    assert provisioner.failed_machines.path is not None  # remembered across sessions, beside the ledger file
    assert provisioner.client.policy.total_seconds == 33
    assert provisioner.on_status is not None
"""


def test_nothing_sets_a_part_of_the_provisioner_once_it_is_built(pytester: pytest.Pytester, make_emulator, monkeypatch):
    emulator = make_emulator()
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_parts=TESTS)
    result = pytester.runpytest_subprocess(
        "--dumont-mode=emulator",
        f"--dumont-api-url={emulator.url}",
        "--dumont-budget=0.75",
        "--dumont-deadman-ttl=20",
        "--dumont-api-retry-seconds=33",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)
    assert emulator.world.live_ids() == []
