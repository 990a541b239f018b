"""The watchdog process: a confirmed start, the key kept out of argv and environ, and destroys when pytest is gone."""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from polling import wait_for

from pytest_dumont.errors import WatchdogError
from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile, process_alive
from pytest_dumont.safety.watchdog import WatchdogLink, WatchdogWatcher
from pytest_dumont.vast.client import CreateRequest, VastClient
from pytest_dumont.vast.models import Offer

PREFIX = "dumont-wdtest"


def rent(client: VastClient, label: str) -> int:
    offer = client.search_offers({"gpu_name": {"eq": "RTX 4090"}, "rentable": {"eq": True}})
    return client.create_instance(offer[0].id, CreateRequest(image="img", disk_gb=10, label=label)).id


def start(emulator, private_state: Path) -> WatchdogLink:
    return spawner(emulator, private_state)().confirm()


def test_the_start_is_confirmed_and_the_key_is_in_neither_argv_nor_environ(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    link = start(emulator, private_state)
    log = private_state / "watchdog.log"
    try:
        assert process_alive(link.pid)
        assert os.getppid() != link.pid
        # Forked away from pytest: not its child, so a kill of pytest's process tree does not reach it.
        assert Path(f"/proc/{link.pid}/stat").read_text().rsplit(")", 1)[1].split()[1] != str(os.getpid())
        secret = emulator.api_key.encode()
        assert secret not in Path(f"/proc/{link.pid}/cmdline").read_bytes()
        assert secret not in Path(f"/proc/{link.pid}/environ").read_bytes()
        wait_for(lambda: "watching session" in log.read_text(), what="the watchdog's first log line")
        assert emulator.api_key not in log.read_text()
    finally:
        link.close()
    wait_for(lambda: not process_alive(link.pid), what="the watchdog to exit after bye")
    assert not log.exists()  # nothing happened: the log went with the watchdog


def test_a_watchdog_that_never_says_ready_is_an_error(tmp_path, make_emulator, monkeypatch, private_state):
    mute = tmp_path / "mute-python"
    mute.write_text("#!/bin/sh\nexec sleep 30\n")
    mute.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(mute))
    emulator = make_emulator(ssh=False)
    with pytest.raises(WatchdogError, match=r"did not confirm its start within 0\.5 s.*Nothing was rented"):
        WatchdogLink.spawn(
            api_url=emulator.url, api_key=emulator.api_key, label_prefix=PREFIX, ledger_path=None, log_path=None
        ).confirm(0.5)


def test_when_pytest_goes_away_it_destroys_registered_and_labelled_instances(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    link = start(emulator, private_state)
    registered = rent(client, f"{PREFIX}-1")
    unannounced = rent(client, f"{PREFIX}-2")  # a create whose answer never reached the session
    bystander = rent(client, "someone-else")
    ledger = LedgerFile(private_state / "ledger.json")
    ledger.expecting(LedgerEntry(f"{PREFIX}-1", "wdtest", emulator.url, created=0.0, dph_total=0.2))
    ledger.created(f"{PREFIX}-1", registered)
    link.register(registered, f"{PREFIX}-1")
    link._abandon()  # the pipe closes without a goodbye, as when pytest is killed

    wait_for(lambda: set(emulator.world.live_ids()) == {bystander}, what="the session's instances to be destroyed")
    wait_for(lambda: not process_alive(link.pid), what="the watchdog to exit")
    assert [e.state for e in ledger.entries()] == ["destroyed"]
    log = (private_state / "watchdog.log").read_text()
    assert f"destroyed instance {registered} ({PREFIX}-1), confirmed" in log
    assert f"destroyed instance {unannounced} ({PREFIX}-2), confirmed" in log


def test_after_goodbye_it_spares_kept_and_destroyed_instances(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    link = start(emulator, private_state)
    done, kept, forgotten = (rent(client, f"{PREFIX}-{n}") for n in (1, 2, 3))
    for instance_id in (done, kept, forgotten):
        link.register(instance_id, f"{PREFIX}-x")
    client.destroy_instance(done)
    link.gone(done)
    link.keep(kept)
    link.close()  # forgotten is still registered: the session's teardown failed to destroy it
    wait_for(lambda: not process_alive(link.pid), what="the watchdog to exit")
    assert emulator.world.live_ids() == [kept]
    assert f"destroyed instance {forgotten}" in (private_state / "watchdog.log").read_text()  # kept to be read


def test_every_message_is_acknowledged(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    link = start(emulator, private_state)
    link.register(1, f"{PREFIX}-1")
    link.gone(1)
    link._write({"op": "nonsense"})
    assert link._read_line(time.monotonic() + 10).startswith("ERROR")
    link.close()
    with pytest.raises(WatchdogError, match="closed"):
        link.register(3, f"{PREFIX}-3")


def spawner(emulator, private_state: Path):
    return lambda: WatchdogLink.spawn(
        api_url=emulator.url,
        api_key=emulator.api_key,
        label_prefix=PREFIX,
        ledger_path=private_state / "ledger.json",
        log_path=private_state / "watchdog.log",
    )


def test_a_watchdog_launched_with_the_pool_is_confirmed_by_the_first_create(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    watcher = WatchdogWatcher(spawner(emulator, private_state))
    watcher.launch()  # when the pool opens: the process starts while offers are searched, nobody waits for it
    assert watcher.link is None
    watcher.expecting(f"{PREFIX}-1", Offer.from_api({"id": 1}))  # the create waits for its READY
    assert watcher.link is not None and process_alive(watcher.link.pid)
    registered = rent(client, f"{PREFIX}-1")
    watcher.link.register(registered, f"{PREFIX}-1")
    watcher.link._abandon()  # pytest killed: the launched watchdog is the one that cleans up
    wait_for(lambda: emulator.world.live_ids() == [], what="the registered instance to be destroyed")


def test_a_launched_watchdog_that_was_never_needed_says_goodbye_and_removes_its_log(make_emulator, private_state):
    emulator = make_emulator(ssh=False)
    spawned: list[WatchdogLink] = []

    def spawn() -> WatchdogLink:
        spawned.append(spawner(emulator, private_state)())
        return spawned[-1]

    watcher = WatchdogWatcher(spawn)
    watcher.launch()
    log = private_state / "watchdog.log"
    assert log.exists()
    watcher.close()  # nothing was ever created: a clean goodbye (its READY read first), no sweep
    (link,) = spawned
    wait_for(lambda: not process_alive(link.pid), what="the watchdog to exit")
    assert not log.exists()  # an uneventful session leaves no log behind


def test_a_session_spawning_its_watchdog_prunes_the_logs_older_than_a_week(
    pytester, monkeypatch, make_emulator, private_state
):
    emulator = make_emulator(ssh=False)
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    private_state.mkdir(parents=True)
    eight_days_ago = time.time() - 8 * 24 * 3600
    old_log, recent_log, unrelated = (private_state / n for n in ("watchdog-x.log", "watchdog-y.log", "notes.txt"))
    for planted in (old_log, recent_log, unrelated):
        planted.write_text("planted\n")
    for planted in (old_log, unrelated):
        os.utime(planted, (eight_days_ago, eight_days_ago))
    pytester.makepyfile("def test_opens_the_pool(dumont_pool): pass\n")
    result = pytester.runpytest_subprocess(
        "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1)
    assert not old_log.exists()
    assert recent_log.exists() and unrelated.exists()


def test_a_launched_watchdog_that_never_says_ready_stops_the_create(tmp_path, make_emulator, monkeypatch):
    mute = tmp_path / "mute-python"
    mute.write_text("#!/bin/sh\nexec sleep 30\n")
    mute.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(mute))
    monkeypatch.setattr("pytest_dumont.safety.watchdog.READY_TIMEOUT_S", 0.5)
    emulator = make_emulator(ssh=False)
    watcher = WatchdogWatcher(
        lambda: WatchdogLink.spawn(
            api_url=emulator.url, api_key=emulator.api_key, label_prefix=PREFIX, ledger_path=None, log_path=None
        )
    )
    watcher.launch()
    with pytest.raises(WatchdogError, match=r"did not confirm its start within 0\.5 s.*Nothing was rented"):
        watcher.expecting(f"{PREFIX}-1", Offer.from_api({"id": 1}))
    assert watcher.link is None
    watcher.close()


def _blocked_on_the_watchers_lock(thread: threading.Thread) -> bool:
    """Whether ``thread`` waits at the ``with self._lock`` of ``WatchdogWatcher.expecting``."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code is not WatchdogWatcher.expecting.__code__:
        return False
    lines, first = inspect.getsourcelines(WatchdogWatcher.expecting)
    return "with self._lock" in lines[frame.f_lineno - first]


def test_two_creates_at_once_share_one_watchdog_and_drop_none(make_emulator, private_state):
    """Prewarming's thread and a factory test create at the same moment (the first test rents its own instance).

    Each used to start a watchdog, and the link overwritten first was dropped: its pipe closed, and that watchdog,
    taking pytest for dead, destroyed the session's instances and removed its key in the middle of the run.
    """
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    spawned: list[WatchdogLink] = []
    confirming, go_on = threading.Event(), threading.Event()

    def spawn() -> WatchdogLink:
        link = spawner(emulator, private_state)()
        spawned.append(link)
        if len(spawned) == 1:
            confirm = link.confirm

            def held_confirm(ready_timeout: float | None = None) -> WatchdogLink:
                confirming.set()  # the first create waits for READY here while the second one asks
                go_on.wait(30)
                return confirm(ready_timeout)

            link.confirm = held_confirm  # type: ignore[method-assign]
        return link

    watcher = WatchdogWatcher(spawn)
    watcher.launch()
    offer = Offer.from_api({"id": 1})
    first = threading.Thread(target=watcher.expecting, args=(f"{PREFIX}-1", offer))
    second = threading.Thread(target=watcher.expecting, args=(f"{PREFIX}-2", offer))
    first.start()
    assert confirming.wait(30)
    second.start()
    wait_for(
        lambda: len(spawned) > 1 or not second.is_alive() or _blocked_on_the_watchers_lock(second),
        what="the second create to reach the watchdog",
    )
    go_on.set()
    first.join(30)
    second.join(30)
    assert len(spawned) == 1, "a second watchdog was started for the same session"
    assert watcher.link is spawned[0]
    registered = rent(client, f"{PREFIX}-1")
    watcher.created(_record(registered, f"{PREFIX}-1"))
    assert registered in emulator.world.live_ids()  # nobody took pytest for dead
    watcher.link._abandon()  # pytest killed now: the one watchdog destroys what was registered
    wait_for(lambda: emulator.world.live_ids() == [], what="the registered instance to be destroyed")


def _record(instance_id: int, label: str):
    from pytest_dumont.provisioning.records import InstanceRecord

    offer = Offer.from_api({"id": 1, "dph_base": 0.2, "storage_cost": 0.1})
    return InstanceRecord(
        instance_id=instance_id, label=label, offer=offer, disk_gb=10, search_started_at=0.0, created_at=0.0
    )
