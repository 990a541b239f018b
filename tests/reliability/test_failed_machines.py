"""Machines that failed to boot are remembered across pytest runs, skipped for a while, and tried again after."""

from __future__ import annotations

import json

import pytest

from pytest_dumont.emulator import Faults
from pytest_dumont.provisioning.failed_machines import FILE_NAME, FailedMachines

TEST = "def test_gpu(ssh_session):\n    assert ssh_session.run('true').ok\n"


def against(emulator, monkeypatch: pytest.MonkeyPatch, *extra: str) -> list[str]:
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", *extra]


def machines_rented(emulator, since: int = 0) -> list[int]:
    machine_of = {o["id"]: o["machine_id"] for o in emulator.world.offers()}
    return [machine_of[h["offer_id"]] for h in emulator.world.history()[since:]]


def test_a_machine_that_failed_is_skipped_by_the_next_run_until_it_expires(
    pytester, monkeypatch, make_emulator, private_state
):
    emulator = make_emulator(faults=Faults(create_faults=["exits"]))
    pytester.makepyfile(TEST)

    first = pytester.runpytest(*against(emulator, monkeypatch))
    first.assert_outcomes(passed=1)
    failed, fallback = machines_rented(emulator)
    memory = json.loads((private_state / FILE_NAME).read_text())
    (row,) = memory["machines"]
    assert row["machine_id"] == failed and row["api_url"] == emulator.url
    assert "will not boot" in row["why"]

    second = pytester.runpytest(*against(emulator, monkeypatch))
    second.assert_outcomes(passed=1)
    assert machines_rented(emulator, since=2) == [fallback]  # the cheapest machine was not tried again

    row["failed_at"] -= 2 * 3600  # two hours ago: past an avoid window of one hour
    (private_state / FILE_NAME).write_text(json.dumps(memory))
    third = pytester.runpytest(*against(emulator, monkeypatch, "--dumont-avoid-failed-hours=1"))
    third.assert_outcomes(passed=1)
    assert machines_rented(emulator, since=3) == [failed]
    assert emulator.world.live_ids() == []


def test_a_corrupt_memory_is_moved_aside_and_named(tmp_path):
    path = tmp_path / FILE_NAME
    path.write_text('{"machines": [{"machine_id": ')
    memory = FailedMachines(path, api_url="http://x", max_age_s=3600, now=lambda: 1000.0)
    (problem,) = memory.problems
    assert f"the failed-machines file {path} is corrupt" in problem
    assert f"moved to {path}.corrupt-1000" in problem
    assert (tmp_path / f"{FILE_NAME}.corrupt-1000").read_text() == '{"machines": [{"machine_id": '
    memory.add(7, "exited")
    assert 7 in FailedMachines(path, api_url="http://x", max_age_s=3600, now=lambda: 1001.0)
    assert 7 not in FailedMachines(path, api_url="http://other", max_age_s=3600, now=lambda: 1001.0)


def test_a_corrupt_memory_warns_in_a_run(pytester, monkeypatch, make_emulator, private_state):
    emulator = make_emulator()
    private_state.mkdir(parents=True)
    (private_state / FILE_NAME).write_text("not json")
    pytester.makepyfile(TEST)
    result = pytester.runpytest(*against(emulator, monkeypatch))
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([f"*the failed-machines file {private_state / FILE_NAME} is corrupt*moved to*"])
    assert list(private_state.glob(f"{FILE_NAME}.corrupt-*"))
