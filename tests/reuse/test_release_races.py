"""`dumont release` against a session adopting the same parked instance: one lock and one claim for both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from polling import wait_for
from reuse_helpers import dumont, edit_entry, entry_of, park_one

from pytest_dumont.statefile import exclusive_lock


def holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (``/proc/<pid>/fd``): it has reached that file."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


def test_release_waits_for_the_ledger_lock_and_leaves_an_entry_claimed_meanwhile(run, emulator, used, state_dir):
    parked_id, entry = park_one(run, used, state_dir)
    lock = state_dir / "ledger.json.lock"
    release = [sys.executable, "-m", "pytest_dumont.cli", "release", str(parked_id)]
    with exclusive_lock(lock, timeout=10.0):  # as a session does while it claims a parked entry
        proc = subprocess.Popen(release, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: holds_open(proc.pid, lock) or proc.poll() is not None, what="release to reach the lock")
            assert emulator.world.live_ids() == [parked_id]  # nothing destroyed before the lock is had
            # The session's claim, made under the lock: the entry is now being adopted by a running process.
            edit_entry(state_dir, parked_id, lambda e: e.update(state="adopting", pid=os.getpid(), session="s1"))
        except BaseException:
            proc.kill()
            raise
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert f"instance {parked_id} is being adopted by session s1 (pid {os.getpid()}): not released" in err
    assert emulator.world.live_ids() == [parked_id]
    assert entry_of(state_dir, parked_id)["state"] == "adopting"  # the session's claim stands
    reaped = dumont("reap")
    assert f"{entry['label']}: being adopted by session s1 (pid {os.getpid()})" in reaped.stdout, reaped.stdout
    assert emulator.world.live_ids() == [parked_id]


def test_a_session_adopting_keeps_its_instance_from_release_and_release_all(pytester, run, emulator, used, state_dir):
    parked_id, _ = park_one(run, used, state_dir)
    reached, go = pytester.path / "adopting", pytester.path / "go"
    pytester.makeconftest(f"""
        import pathlib, time
        import pytest_dumont.ssh.connect as ssh_connect

        real_connect = ssh_connect.connect

        def gated(*args, **kwargs):  # the adoption's SSH check waits until the outer test says go
            pathlib.Path({str(reached)!r}).write_text("x")
            while not pathlib.Path({str(go)!r}).exists():
                time.sleep(0.01)
            return real_connect(*args, **kwargs)

        ssh_connect.connect = gated
    """)
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}",
         "--dumont-reuse=5", "-p", "no:randomly", "-p", "no:cacheprovider"],
        stdin=pytester.CLOSE_STDIN,
    )  # fmt: skip
    try:
        wait_for(reached.exists, timeout=60, what="the adoption to reach its SSH check")
        adopting = entry_of(state_dir, parked_id)
        assert adopting["state"] == "adopting"
        who = f"being adopted by session {adopting['session']} (pid {proc.pid})"

        by_id = dumont("release", str(parked_id))
        assert by_id.returncode == 1
        assert f"instance {parked_id} is {who}: not released" in by_id.stderr
        every = dumont("release", "--all")
        assert every.returncode == 0, every.stderr
        assert f"skipped instance {parked_id}: {who}" in every.stdout
        assert emulator.world.live_ids() == [parked_id]
        assert entry_of(state_dir, parked_id)["state"] == "adopting"
        go.write_text("x")
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [instance_id for instance_id, _ in used()] == [parked_id, parked_id]  # adopted, then parked again
    assert entry_of(state_dir, parked_id)["state"] == "parked"
    released = dumont("release", "--all")
    assert released.returncode == 0 and f"released instance {parked_id}: destroyed, confirmed" in released.stdout
    assert emulator.world.live_ids() == []
