"""The ledger file (locked, atomic, never dropped when corrupt) and `dumont reap`, run as users run it."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_dumont.errors import LedgerFileError
from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile
from pytest_dumont.vast.client import CreateRequest, VastClient


def dead_pid() -> int:
    """The pid of a process that has exited: the owner of a ledger entry left by a killed session."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def rent(client: VastClient, label: str) -> int:
    offers = client.search_offers({"gpu_name": {"eq": "RTX 4090"}, "rentable": {"eq": True}})
    return client.create_instance(offers[0].id, CreateRequest(image="img", disk_gb=10, label=label)).id


def entry(label: str, url: str, *, pid: int, instance_id: int | None = None, state: str = "live") -> LedgerEntry:
    return LedgerEntry(label, "s1", url, created=0.0, dph_total=0.3, instance_id=instance_id, state=state, pid=pid)


def reap_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest_dumont.cli", "reap", *args]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False)


def test_entries_survive_a_round_trip_and_the_file_is_private(private_state):
    ledger = LedgerFile(private_state / "ledger.json")
    ledger.expecting(entry("dumont-a-1", "http://x", pid=1, state="creating"))
    ledger.created("dumont-a-1", 7)
    ledger.settle("dumont-a-1", 7, "destroyed", "ok")
    (only,) = ledger.entries()
    assert (only.instance_id, only.state, only.note) == (7, "destroyed", "ok")
    assert (private_state / "ledger.json").stat().st_mode & 0o777 == 0o600


def test_a_corrupt_ledger_is_named_and_never_overwritten(private_state):
    path = private_state / "ledger.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "entries": [{"label": ')
    ledger = LedgerFile(path)
    with pytest.raises(LedgerFileError, match=f"the ledger file {path} is corrupt.*left as it is"):
        ledger.expecting(entry("dumont-a-1", "http://x", pid=1))
    assert path.read_text() == '{"version": 1, "entries": [{"label": '


def test_a_locked_ledger_is_an_error_that_names_the_holder(private_state):
    path = private_state / "ledger.json"
    LedgerFile(path).expecting(entry("dumont-a-1", "http://x", pid=1))
    before = path.read_text()
    with open(path.with_name("ledger.json.lock"), "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LedgerFileError, match=r"stayed locked for 0\.2 s \(held by pid 4242\); nothing"):
            LedgerFile(path, lock_timeout=0.2).created("dumont-a-1", 9)
    assert path.read_text() == before


def test_reap_destroys_what_dead_sessions_left_and_nothing_else(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    in_ledger = rent(client, "dumont-dead-1")
    by_prefix = rent(client, "dumont-dead-2")
    still_running = rent(client, "dumont-alive-1")
    kept = rent(client, "dumont-kept-1")
    foreign = rent(client, "not-ours")
    ledger = LedgerFile(private_state / "ledger.json")
    ledger.expecting(entry("dumont-dead-1", emulator.url, pid=dead_pid(), instance_id=in_ledger))
    ledger.expecting(entry("dumont-alive-1", emulator.url, pid=os.getpid(), instance_id=still_running))
    ledger.expecting(entry("dumont-kept-1", emulator.url, pid=dead_pid(), instance_id=kept, state="kept"))
    env = {"VAST_API_KEY": emulator.api_key, "VAST_URL": emulator.url}

    dry = reap_cli("--label-prefix", "dumont-", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would destroy instance {in_ledger} (dumont-dead-1)" in dry.stdout
    assert f"would destroy instance {by_prefix} (dumont-dead-2)" in dry.stdout
    assert len(emulator.world.live_ids()) == 5

    done = reap_cli("--label-prefix", "dumont-", env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(emulator.world.live_ids()) == sorted([still_running, kept, foreign])
    assert "dumont-alive-1: its session (pid" in done.stdout
    assert "dumont-kept-1: kept for debugging" in done.stdout
    assert {e.label: e.state for e in ledger.entries()}["dumont-dead-1"] == "destroyed"
    assert emulator.api_key not in done.stdout + done.stderr

    reap_cli("--include-kept", env=env)
    assert sorted(emulator.world.live_ids()) == sorted([still_running, foreign])


def test_reap_spares_instances_younger_than_older_than(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    young = rent(VastClient(emulator.url, emulator.api_key), "dumont-young-1")
    env = {"VAST_API_KEY": emulator.api_key, "VAST_URL": emulator.url}
    result = reap_cli("--no-ledger", "--label-prefix", "dumont-", "--older-than", "2h", env=env)
    assert result.returncode == 0
    assert "nothing to reap" in result.stdout
    assert emulator.world.live_ids() == [young]


def test_reap_with_an_unreachable_api_says_so_and_keeps_the_ledger(private_state):
    path = private_state / "ledger.json"
    url = "http://127.0.0.1:9"
    LedgerFile(path).expecting(entry("dumont-dead-1", url, pid=dead_pid(), instance_id=5))
    before = path.read_text()
    result = reap_cli("--url", url, "--dumont-teardown-retry-seconds=0.3", env={"VAST_API_KEY": "k" * 32})
    assert result.returncode == 1
    assert "COULD NOT DESTROY instance 5" in result.stderr
    assert {e.state for e in LedgerFile(path).entries()} == {"teardown_failed"}
    assert "k" * 32 not in result.stdout + result.stderr
    assert before != path.read_text()  # the failure is recorded, the entry kept for the next reap


def test_reap_names_a_bad_teardown_retry_value_and_destroys_nothing(private_state, make_emulator):
    emulator = make_emulator(ssh=False)
    leftover = rent(VastClient(emulator.url, emulator.api_key), "dumont-dead-1")
    LedgerFile(private_state / "ledger.json").expecting(
        entry("dumont-dead-1", emulator.url, pid=dead_pid(), instance_id=leftover)
    )
    env = {"VAST_API_KEY": emulator.api_key, "VAST_URL": emulator.url}
    from_env = reap_cli(env={**env, "DUMONT_TEARDOWN_RETRY_SECONDS": "soon"})
    assert from_env.returncode == 2
    assert "$DUMONT_TEARDOWN_RETRY_SECONDS='soon': must be a number above 0" in from_env.stderr
    from_flag = reap_cli("--dumont-teardown-retry-seconds=-1", env=env)
    assert from_flag.returncode == 2
    assert "--dumont-teardown-retry-seconds='-1': must be a number above 0" in from_flag.stderr
    assert emulator.world.live_ids() == [leftover]


def test_reap_refuses_to_run_without_a_key(private_state):
    result = reap_cli("--label-prefix", "dumont-", env={"VAST_API_KEY": ""})
    assert result.returncode == 2
    assert "set VAST_API_KEY" in result.stdout


def test_a_corrupt_ledger_makes_reap_fail_loudly(private_state, make_emulator):
    emulator = make_emulator(ssh=False)
    path = private_state / "ledger.json"
    path.parent.mkdir(parents=True)
    path.write_text("not json")
    result = reap_cli(env={"VAST_API_KEY": emulator.api_key, "VAST_URL": emulator.url})
    assert result.returncode == 1
    assert f"the ledger file {path} is corrupt" in result.stderr
    assert Path(path).read_text() == "not json"


def test_the_next_session_sweeps_what_a_dead_one_left(pytester, monkeypatch, make_emulator, private_state):
    emulator = make_emulator()
    leftover = rent(VastClient(emulator.url, emulator.api_key), "dumont-dead-1")
    LedgerFile(private_state / "ledger.json").expecting(
        entry("dumont-dead-1", emulator.url, pid=dead_pid(), instance_id=leftover)
    )
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    pytester.makepyfile("def test_a(vast_gpu): pass\n")
    result = pytester.runpytest("--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*destroyed instance {leftover} (dumont-dead-1), left running by an earlier*"])
    assert emulator.world.live_ids() == []


def test_reap_takes_the_plugins_own_option_names(make_emulator, private_state, tmp_path):
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    rent(client, "dumont-named-1")
    key_file = tmp_path / "vast_key"
    key_file.write_text(emulator.api_key + "\n")
    result = reap_cli(
        "--no-ledger",
        "--label-prefix",
        "dumont-",
        f"--dumont-api-url={emulator.url}",
        f"--dumont-api-key-file={key_file}",
        env={},
    )
    assert result.returncode == 0, result.stderr
    assert emulator.world.live_ids() == []


def test_destroyed_entries_are_kept_a_week_and_at_most_the_newest_200(private_state):
    """Every rental rewrites the file: it must not grow with every session a machine has ever run."""
    ledger = LedgerFile(private_state / "ledger.json")
    now = time.time()
    old_live = entry("dumont-live-1", "http://x", pid=1, instance_id=1)
    old_live.updated = now - 30 * 24 * 3600.0  # live entries stay, however old: they may still be billing
    last_week = entry("dumont-old-1", "http://x", pid=1, instance_id=2, state="destroyed")
    last_week.updated = now - 8 * 24 * 3600.0
    recent = []
    for i in range(250):
        done = entry(f"dumont-done-{i}", "http://x", pid=1, instance_id=100 + i, state="destroyed")
        done.updated = now - 3600.0 + i  # dumont-done-249 is the newest
        recent.append(done)
    ledger.update(lambda entries: entries.extend([old_live, last_week, *recent]))
    kept = ledger.entries()
    assert [e.label for e in kept] == ["dumont-live-1"] + [f"dumont-done-{i}" for i in range(50, 250)]
    # One entry per line, and still one JSON document.
    lines = (private_state / "ledger.json").read_text().splitlines()
    assert len(lines) == 1 + len(kept) + 1 and json.loads("\n".join(lines))["version"] == 1
