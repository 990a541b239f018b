"""--dumont-reuse against a standalone emulator: a run parks, the next adopts; what must never be parked is not."""

from __future__ import annotations

import re
import stat

import pytest
from polling import wait_for
from reuse_helpers import entry_of, ledger_entries, watchdog_done

LOUD = re.compile(r"^PARKED instance (\d+) billing \$0\.\d\d/h until \d\d:\d\d - dumont release \1$")


def parked_ids(result: pytest.RunResult) -> list[int]:
    return [int(m.group(1)) for m in map(LOUD.match, result.outlines) if m]


@pytest.mark.parametrize("prewarm", ["on", "off"])
def test_the_second_run_adopts_the_instance_the_first_parked(run, emulator, used, state_dir, prewarm):
    first = run("--dumont-reuse=5", f"--dumont-prewarm={prewarm}")
    first.assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    assert parked_ids(first) == [instance_id]
    assert first.outlines[-2] == next(line for line in first.outlines if LOUD.match(line))  # the summary ends so
    # pytest is gone and its watchdog has finished: the parked instance is still there, and nothing else.
    wait_for(lambda: watchdog_done(state_dir, first), what="the first run's watchdog to finish")
    assert emulator.world.live_ids() == [instance_id]
    entry = entry_of(state_dir, instance_id)
    assert entry["state"] == "parked" and len(entry["parking"]["fingerprint"]) == 64
    key_dir = state_dir / "parked" / entry["label"]
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in key_dir.iterdir()} == {
        "id_ed25519": 0o600,
        "id_ed25519.pub": 0o600,
        "known_hosts": 0o600,
    }

    first_key = (key_dir / "id_ed25519.pub").read_text()
    second = run("--dumont-reuse=5", f"--dumont-prewarm={prewarm}")
    second.assert_outcomes(passed=1)
    assert used() == [(instance_id, 0), (instance_id, 1)]  # the same machine, the first run's file still there
    assert len(emulator.world.history()) == 1  # one create in all
    second.stdout.fnmatch_lines(["*adopt parked instance*", "  parked before this session: $0.0*s parked*"])
    assert parked_ids(second) == [instance_id]  # parked again, for the next run
    assert (key_dir / "id_ed25519.pub").read_text() != first_key  # parked again under the adopter's session key


def test_reuse_clean_empties_the_workspace_of_an_adopted_instance(run, used):
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    run("--dumont-reuse=5", "--dumont-reuse-clean").assert_outcomes(passed=1)
    (first_id, _), (second_id, files) = used()
    assert second_id == first_id and files == 0


def test_a_fingerprint_mismatch_never_adopts(run, emulator, used, state_dir):
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    other = run("--dumont-reuse=5", "--dumont-image=python:3.11-slim")
    other.assert_outcomes(passed=1)
    (first_id, _), (second_id, _) = used()
    assert second_id != first_id
    assert sorted(parked_ids(other)) == sorted([first_id, second_id])  # both parked, each for its own request
    assert entry_of(state_dir, first_id)["state"] == "parked"


def test_without_reuse_the_instance_is_destroyed_and_parked_ones_are_left_alone(run, emulator, used, state_dir):
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    plain = run()
    plain.assert_outcomes(passed=1)
    (first_id, _), (second_id, _) = used()
    assert second_id != first_id  # a session without --dumont-reuse adopts nothing...
    assert emulator.world.live_ids() == [first_id]  # ... destroys its own, and its start-up reap spares the parked
    assert parked_ids(plain) == []


def test_an_interrupted_session_destroys_its_instance_instead_of_parking_it(run, pytester, emulator, used, state_dir):
    pytester.makepyfile(
        test_gpu="""
        def test_interrupted(vast_gpu):
            raise KeyboardInterrupt
    """
    )
    result = run("--dumont-reuse=5")
    assert "KeyboardInterrupt" in result.stdout.str()
    assert parked_ids(result) == []
    assert emulator.world.live_ids() == []
    assert [e["state"] for e in ledger_entries(state_dir)] == ["destroyed"]
    assert not (state_dir / "parked").exists() or not any((state_dir / "parked").iterdir())


def test_a_session_killed_before_parking_loses_its_instance_to_the_watchdog(pytester, emulator, state_dir, tmp_path):
    import os
    import signal

    flag = tmp_path / "in-test"
    pytester.makepyfile(
        test_gpu=f"""
        import pathlib, time

        def test_hangs(vast_gpu):
            pathlib.Path({str(flag)!r}).write_text(str(vast_gpu.id))
            time.sleep(600)
    """
    )
    proc = pytester.popen(
        ["python", "-m", "pytest", "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "--dumont-reuse=5",
         "-p", "no:randomly", "-p", "no:cacheprovider"],
        stdin=pytester.CLOSE_STDIN,
    )  # fmt: skip
    try:
        instance_id = int(wait_for(lambda: flag.exists() and flag.read_text(), timeout=60, what="the test to start"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: instance_id not in emulator.world.live_ids(), timeout=60, what="the watchdog to destroy it")
    wait_for(lambda: entry_of(state_dir, instance_id)["state"] == "destroyed", what="the ledger entry to settle")
