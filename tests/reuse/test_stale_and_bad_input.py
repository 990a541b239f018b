"""Parked instances that cannot be adopted (gone, stopped, another host key, expired, corrupt, foreign), a kill during
adoption, two sessions at once, CI, and budgets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from polling import wait_for
from reuse_helpers import entry_of, ledger_entries


def park_one(run, used, state_dir) -> tuple[int, dict]:
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    return instance_id, entry_of(state_dir, instance_id)


def edit_entry(state_dir, instance_id, change) -> None:
    path = state_dir / "ledger.json"
    data = json.loads(path.read_text())
    for entry in data["entries"]:
        if entry["instance_id"] == instance_id:
            change(entry)
    path.write_text(json.dumps(data))


def another_host_key(pinned_line: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    blob = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{pinned_line.split()[0]} {blob}\n"


@pytest.mark.parametrize("what", ["destroyed elsewhere", "stopped", "host key changed"])
def test_a_parked_instance_that_cannot_be_adopted_is_cleaned_and_a_fresh_one_rented(
    run, emulator, used, state_dir, what
):
    parked_id, entry = park_one(run, used, state_dir)
    key_dir = state_dir / "parked" / entry["label"]
    if what == "destroyed elsewhere":
        emulator.world.destroy(parked_id)
        why = "was destroyed elsewhere"
    elif what == "stopped":
        emulator.world.stop(parked_id)
        why = "is not running"
    else:
        known_hosts = key_dir / "known_hosts"
        known_hosts.write_text(another_host_key(known_hosts.read_text()))
        why = "presented another host key than the one pinned"
    second = run("--dumont-reuse=5")
    second.assert_outcomes(passed=1)
    (_, _), (fresh_id, _) = used()
    assert fresh_id != parked_id
    second.stdout.fnmatch_lines([f"DUMONT WARNING: parked instance {parked_id} {why}*not adopted, the entry cleaned"])
    assert parked_id not in emulator.world.live_ids()  # stopped or another key: destroyed, it still billed
    assert entry_of(state_dir, parked_id)["state"] == "destroyed"
    assert not (state_dir / "parked" / entry["label"]).exists()
    assert not key_dir.exists()
    assert entry_of(state_dir, fresh_id)["state"] == "parked"


def test_an_expired_parked_instance_destroys_itself_and_reap_cleans_its_entry(run, emulator, used, state_dir):
    run("--dumont-reuse=0.05").assert_outcomes(passed=1)  # 3 s
    ((parked_id, _),) = used()
    # Nothing on this machine destroys it: the dead-man switch on the instance does, through its own key.
    wait_for(lambda: parked_id not in emulator.world.live_ids(), timeout=60, what="the switch to fire")
    listed = dumont("parked")
    assert listed.returncode == 0 and "EXPIRED" in listed.stdout
    reaped = dumont("reap")
    assert reaped.returncode == 0, reaped.stderr
    assert entry_of(state_dir, parked_id)["state"] == "destroyed"
    assert not any((state_dir / "parked").iterdir())
    assert "no parked instances" in dumont("parked").stdout


def test_a_session_killed_while_adopting_loses_the_instance_to_its_watchdog(
    pytester, emulator, run, used, state_dir, tmp_path
):
    parked_id, _ = park_one(run, used, state_dir)
    flag = tmp_path / "adopting"
    pytester.makeconftest(f"""
        import pathlib, time
        import pytest_dumont.ssh.connect as ssh_connect

        def stuck(*args, **kwargs):  # the adoption's SSH check hangs: the outer test kills this pytest there
            pathlib.Path({str(flag)!r}).write_text("x")
            time.sleep(600)

        ssh_connect.connect = stuck
    """)
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}",
         "--dumont-reuse=5", "-p", "no:randomly", "-p", "no:cacheprovider"],
        stdin=pytester.CLOSE_STDIN,
    )  # fmt: skip
    try:
        wait_for(flag.exists, timeout=60, what="the adoption to reach its SSH check")
        assert entry_of(state_dir, parked_id)["state"] == "adopting"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: parked_id not in emulator.world.live_ids(), timeout=60, what="the watchdog to destroy it")
    wait_for(lambda: entry_of(state_dir, parked_id)["state"] == "destroyed", what="the ledger entry to settle")
    assert emulator.world.live_ids() == []  # nothing else was rented either


HOLD_UNTIL_BOTH = """
import os
import time
from pathlib import Path

def test_gpu(vast_gpu):
    with open(os.environ["DUMONT_TEST_OUT"], "a") as out:
        out.write(f"{vast_gpu.id} 0\\n")
    arrived = Path(os.environ["ARRIVED"])
    (arrived / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(arrived.iterdir())) < 2:  # hold the instance until the other session holds one too
        assert time.monotonic() < deadline, "the other session never got an instance"
        time.sleep(0.01)
"""


def test_two_sessions_at_once_never_adopt_the_same_instance(pytester, emulator, run, used, state_dir):
    parked_id, _ = park_one(run, used, state_dir)
    # Each session's test holds its instance until the other's holds one: without that, a session that started late
    # on a busy machine adopted the instance the first one had already parked again, and the check saw it twice.
    pytester.makepyfile(test_both=HOLD_UNTIL_BOTH)
    arrived = pytester.mkdir("arrived")
    args = [sys.executable, "-m", "pytest", "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}",
            "--dumont-reuse=5", "-p", "no:randomly", "-p", "no:cacheprovider", "test_both.py"]  # fmt: skip
    env = {**os.environ, "ARRIVED": str(arrived)}
    procs = [
        subprocess.Popen(args, cwd=pytester.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    ids = [instance_id for instance_id, _ in used()[1:]]
    assert sorted(ids) == sorted({*ids}) and parked_id in ids  # one adopted it, the other rented its own
    assert sorted(e["instance_id"] for e in ledger_entries(state_dir) if e["state"] == "parked") == sorted(ids)


def test_a_corrupt_entry_is_skipped_with_a_warning_and_never_adopted(run, emulator, used, state_dir):
    parked_id, _ = park_one(run, used, state_dir)
    edit_entry(state_dir, parked_id, lambda e: e["parking"].pop("port"))
    second = run("--dumont-reuse=5")
    second.assert_outcomes(passed=1)
    assert used()[1][0] != parked_id
    second.stdout.fnmatch_lines(["DUMONT WARNING: skipped the corrupt parked entry*malformed parking data*"])
    assert parked_id in emulator.world.live_ids()  # left alone: its switch still fires at its deadline...
    released = dumont("release", str(parked_id))  # ... or it is released by hand
    assert released.returncode == 0, released.stderr
    assert parked_id not in emulator.world.live_ids()


def test_a_foreign_entry_is_skipped_with_a_warning(run, used, state_dir, tmp_path):
    parked_id, entry = park_one(run, used, state_dir)
    elsewhere = tmp_path / "elsewhere"
    (state_dir / "parked" / entry["label"]).rename(elsewhere)
    edit_entry(state_dir, parked_id, lambda e: e["parking"].update(key_dir=str(elsewhere)))
    second = run("--dumont-reuse=5")
    second.assert_outcomes(passed=1)
    assert used()[1][0] != parked_id
    second.stdout.fnmatch_lines([f"DUMONT WARNING: skipped the parked entry *(instance {parked_id}): *is not under*"])


@pytest.mark.parametrize("forced", [False, True])
def test_ci_refuses_reuse_unless_forced_and_says_why(run, emulator, used, monkeypatch, forced):
    monkeypatch.setenv("CI", "true")
    result = run("--dumont-reuse=5", *(["--dumont-reuse-in-ci"] if forced else []))
    result.assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    if forced:
        assert emulator.world.live_ids() == [instance_id]
        assert "refused because CI=true" not in result.stdout.str()
    else:
        assert emulator.world.live_ids() == []
        result.stdout.fnmatch_lines(["DUMONT WARNING: --dumont-reuse is refused because CI=true*--dumont-reuse-in-ci*"])


def test_the_time_parked_counts_against_the_adopting_sessions_budget(run, emulator, used, state_dir):
    parked_id, _ = park_one(run, used, state_dir)
    ten_hours = 10 * 3600.0  # at $0.17/h: $1.69, over the budget below
    edit_entry(state_dir, parked_id, lambda e: e["parking"].update(parked_at=e["parking"]["parked_at"] - ten_hours))
    second = run("--dumont-reuse=5", "--dumont-budget=1")
    second.assert_outcomes(errors=1)
    second.stdout.fnmatch_lines(["*BudgetExceeded: adopting parked instance*$1.6* parked before this session*"])
    assert emulator.world.live_ids() == []  # the budget stop destroyed it; nothing else was rented
    assert len(emulator.world.history()) == 1


def dumont(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_dumont.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_an_adopting_entry_left_by_a_dead_process_is_destroyed_by_the_next_sessions_sweep(
    run, emulator, used, state_dir
):
    # Killed between its claim and its watchdog's registration, a session leaves an ``adopting`` entry of a dead pid.
    parked_id, entry = park_one(run, used, state_dir)
    gone = subprocess.Popen(["true"])
    gone.wait()
    edit_entry(state_dir, parked_id, lambda e: e.update(state="adopting", pid=gone.pid))
    run().assert_outcomes(passed=1)  # no reuse: only its start-up sweep looks at the ledger file
    assert parked_id not in emulator.world.live_ids()
    assert entry_of(state_dir, parked_id)["state"] == "destroyed"
    assert not (state_dir / "parked" / entry["label"]).exists()
