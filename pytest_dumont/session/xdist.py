"""pytest-xdist: one instance for the whole run (``--dumont-xdist=shared``) or one per worker (``per-worker``).

Shared mode keeps acquisition and teardown in the controller, the one process xdist never loses: workers can crash
and their fixture teardown then never runs (pytest-xdist #537). The controller starts renting the session's default
request at its ``pytest_sessionstart`` (before xdist spawns the workers, so the boot overlaps their start and their
collection), passes a rendezvous directory and the API to each worker through ``workerinput``, and writes
``ready.json`` (or ``failed.json``) there. A worker waits for that file at its first GPU test, opens its own SSH
connection with the session key (same user, 0600 file) and never destroys. Each worker writes there, at the end of
its collection, the tests that will use the instance; the controller destroys the instance as soon as the last of
them has finished (or crashed its worker), and at once if there are none, so the CPU tests that run on do not keep
it rented. In any case it destroys it at its ``pytest_sessionfinish``, which xdist runs only once every worker is
down, finished or crashed: a crash never takes the instance from the others, and never leaks it. Cost is counted
once, in the controller's ledger.

Tests whose ``dumont_offer`` asks for something else than the session's defaults get instances of their worker's own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Generator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.errors import DumontError, ProvisioningError
from pytest_dumont.provisioning.provisioner import ProvisionRequest, ReadyInstance
from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.session.prewarm import BackgroundProvisioning
from pytest_dumont.session.resources import WORKERINPUT_KEY, is_xdist_controller, open_session
from pytest_dumont.session.state import SESSION_KEY, get_state
from pytest_dumont.statefile import write_atomic
from pytest_dumont.vast.models import Offer
from pytest_dumont.waiting import Backoff, WaitTimedOut, poll

HOLDS_KEY = "dumont_shared_holds"  # workeroutput: which tests held the shared instance, and when
PHASES_KEY = "dumont_shared_phases"  # workeroutput: the commands and phases those tests ran on it
FINISHED = ("teardown", "???")  # a test's last report: its teardown, or the one xdist makes when its worker crashed


def default_request(config: pytest.Config) -> ProvisionRequest:
    settings = get_state(config).settings
    return ProvisionRequest(filters=settings.filters, image=settings.image)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data))


class SharedInstance:
    """Controller side: rents the run's instance in the background, tells the workers, destroys it at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.request = default_request(config)
        self.directory = Path(tempfile.mkdtemp(prefix="dumont-shared-"))  # 0700: holds where the key is
        self.holds: list[Hold] = []
        self.phases: list[PhaseTiming] = []
        self.instance_id: int | None = None
        self.users: set[str] | None = None  # the tests that will use it and have not finished; None: not known yet
        self.finished: set[str] = set()
        self.release: threading.Thread | None = None
        self._stack = ExitStack()
        self._lock = threading.Lock()
        self.api, self.pool = self._stack.enter_context(open_session(config))
        self.background = BackgroundProvisioning(self.pool, self.request, "dumont-shared", self._provisioned)

    def start(self) -> None:
        self.background.start()

    def _provisioned(self, ready: ReadyInstance | None, error: BaseException | None) -> None:
        if ready is None:  # every worker's first GPU test raises this
            _write_atomic(self.directory / "failed.json", {"error": f"{type(error).__name__}: {error}"})
            return
        record = ready.record
        self.instance_id = record.instance_id
        _write_atomic(
            self.directory / "ready.json",
            {
                "instance_id": record.instance_id,
                "label": record.label,
                "offer": dict(record.offer.raw),
                "disk_gb": record.disk_gb,
                "host": ready.target.host,
                "port": ready.target.port,
                "key": str(self.pool.provisioner.ssh_key.private_path),
                "public": self.pool.provisioner.ssh_key.public_openssh,
            },
        )

    def workerinput(self) -> dict[str, Any]:
        return {
            "dir": str(self.directory),
            "api_url": self.api.url,
            "api_key": self.api.api_key,
            "emulated": self.api.emulated,
        }

    def close(self) -> None:
        """Cancel a provisioning in flight, destroy everything, stop the API. Idempotent."""
        with self._lock:
            stack, self._stack = self._stack, ExitStack()
        self.background.cancel()  # an interrupted run does not wait for the boot; the provisioning destroys it
        try:
            stack.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.workerinput()

    # --- released once its last test has finished -------------------------------------------------------------

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.users is not None:
            return  # every worker collects the same tests: the first one to finish says which use the instance
        listed = self.directory / f"users-{node.workerinput['workerid']}.json"
        try:
            users = set(json.loads(listed.read_text())["ids"]) if listed.exists() else set()
        except (OSError, ValueError, KeyError):
            return  # unreadable: the instance is kept until the session's end, as it always may be
        self.users = users - self.finished
        if not self.users:
            self._release("no collected test uses the shared instance")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in FINISHED:
            return
        self.finished.add(report.nodeid)
        if self.users is not None and report.nodeid in self.users:
            self.users.discard(report.nodeid)
            if not self.users:
                self._release("the last test that uses the shared instance has finished")

    def _release(self, reason: str) -> None:
        """Destroy the instance now, on a thread (the controller keeps scheduling); the session's end waits for it."""
        if self.pool.adopter is not None:
            return  # --dumont-reuse: it is parked at the session's end for the next run, not destroyed now
        if self.release is None:
            self.release = threading.Thread(
                target=self._destroy_now, args=(reason,), name="dumont-shared-release", daemon=True
            )
            self.release.start()

    def _destroy_now(self, reason: str) -> None:
        self.background.cancel(reason=reason)  # still booting: it destroys what it made; else returns at once
        for ready in self.pool.instances():
            if ready.record.instance_id == self.instance_id:
                with suppress(DumontError):  # not confirmed: the session's end tries again, then the backstops
                    self.pool.evict(ready)

    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        # A crashed worker sends nothing; its tests still ran on the instance, which the controller bills once.
        # Times are CLOCK_MONOTONIC, one clock for every process of this machine.
        output = getattr(node, "workeroutput", None) or {}
        for h in output.get(HOLDS_KEY, []):
            self.holds.append(Hold.from_dict(h))
        self.phases += [PhaseTiming(**p) for p in output.get(PHASES_KEY, [])]

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        # Every worker is down by now. Destroy before plugin.py's sessionfinish writes the reports.
        if self.release is not None:
            self.release.join(60.0)  # an early release still at work: let it finish (close() destroys regardless)
        for ready in self.pool.instances():
            if ready.record.instance_id == self.instance_id:
                ready.record.holds.extend(sorted(self.holds, key=lambda h: h.started))
                # Kept in the order they ended, as a record's phases always are (the per-test scan relies on it).
                ready.record.phases[:] = sorted(ready.record.phases + self.phases, key=lambda p: p.started + p.duration)
        with suppress(DumontError):  # a teardown failure is in the state's teardown_errors, shown in the summary
            self.close()
        return (yield)


SHARED_KEY = pytest.StashKey[SharedInstance]()


def controller_start(config: pytest.Config) -> SharedInstance | None:
    """On an xdist controller in shared mode with a GPU-capable mode: start renting the run's one instance."""
    state = config.stash.get(SESSION_KEY, None)
    if state is None or not is_xdist_controller(config) or SHARED_KEY in config.stash:
        return None
    settings = state.settings
    if settings.xdist_mode != "shared" or settings.uses_cassettes:
        _name_parked_instances(config)
        return None
    shared = SharedInstance(config)
    config.stash[SHARED_KEY] = shared
    config.pluginmanager.register(shared, "dumont-shared")
    shared.start()
    return shared


def _name_parked_instances(config: pytest.Config) -> None:
    """Per-worker mode with ``--dumont-reuse``: the workers park their own; the controller's summary names them."""
    settings = get_state(config).settings
    if settings.xdist_mode != "per-worker" or settings.reuse_min <= 0:
        return
    from pytest_dumont.safety.arming import ledger_file, reuse_refusal
    from pytest_dumont.safety.parked_summary import ParkedSummary

    if reuse_refusal(config) is None:
        config.pluginmanager.register(ParkedSummary(ledger_file(config), settings.api_url), "dumont-parked-summary")


@dataclass
class WorkerShare:
    """Worker side: this process's connection to the controller's instance, opened at its first GPU test."""

    directory: Path
    ready: ReadyInstance | None = None

    def close(self) -> None:
        if self.ready is not None:
            with suppress(Exception):  # the controller may have destroyed it already
                self.ready.connection.close()
        (self.directory / f"known_hosts-{os.getpid()}").unlink(missing_ok=True)


WORKER_KEY = pytest.StashKey[WorkerShare]()


def worker_collected(session: pytest.Session) -> None:
    """On a shared-mode worker, once collection is over: tell the controller which tests will use its instance."""
    config = session.config
    data = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if data is None:
        return
    from pytest_dumont.session.markers import provision_request, uses_shared_instance

    settings, wanted = get_state(config).settings, default_request(config)
    ids = [
        item.nodeid
        for item in session.items
        if uses_shared_instance(item) and provision_request(item, settings) == wanted
    ]
    _write_atomic(Path(data["dir"]) / f"users-{config.workerinput['workerid']}.json", {"ids": ids})  # type: ignore[attr-defined]


def worker_instance(config: pytest.Config, request: ProvisionRequest) -> ReadyInstance | None:
    """The shared instance for ``request`` on a shared-mode worker; None when this test rents its own."""
    data = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if data is None or request != default_request(config):
        return None
    share = config.stash.get(WORKER_KEY, None)
    if share is None:
        share = config.stash[WORKER_KEY] = WorkerShare(Path(data["dir"]))
    if share.ready is None:
        share.ready = _connect(config, share.directory)
    return share.ready


def _connect(config: pytest.Config, directory: Path) -> ReadyInstance:
    from pytest_dumont.ssh.connect import SSHTarget, wait_for_ssh
    from pytest_dumont.ssh.keys import SessionKey

    state = get_state(config)
    settings = state.settings
    deadline = state.clock.now() + settings.boot_timeout + settings.ssh_timeout + 60.0
    ready_file, failed_file = directory / "ready.json", directory / "failed.json"

    def handed_over() -> bool | None:
        if ready_file.exists():
            return True
        if failed_file.exists():
            raise ProvisioningError(f"the run's shared instance failed: {json.loads(failed_file.read_text())['error']}")
        if not directory.exists():
            raise ProvisioningError("the xdist controller never handed over the run's shared instance")
        return None

    try:  # polling a file the controller writes once: no API call is spent, so the pace stays short
        poll(handed_over, clock=state.clock, deadline=deadline, backoff=Backoff(0.02, 1.0, 0.02))
    except WaitTimedOut:
        raise ProvisioningError("the xdist controller never handed over the run's shared instance") from None
    data = json.loads(ready_file.read_text())
    now = state.clock.now()
    record = InstanceRecord(  # not in this worker's ledger: the controller owns, bills and destroys it
        instance_id=data["instance_id"],
        label=data["label"],
        offer=Offer.from_api(data["offer"]),
        disk_gb=data["disk_gb"],
        search_started_at=now,
        created_at=now,
        ready_at=now,
        ssh_address=(data["host"], data["port"]),
    )
    target = SSHTarget(host=data["host"], port=data["port"])
    key = SessionKey(private_path=Path(data["key"]), public_openssh=data["public"])
    connection, _ = wait_for_ssh(
        target,
        key,
        directory / f"known_hosts-{os.getpid()}",
        clock=state.clock,
        deadline=state.clock.now() + settings.ssh_timeout,
        instance_id=record.instance_id,
    )
    return ReadyInstance(record=record, target=target, connection=connection)


def worker_finish(config: pytest.Config, workeroutput: dict[str, Any]) -> bool:
    """Send the controller the tests that used its instance, close this worker's connection; whether any did."""
    share = config.stash.get(WORKER_KEY, None)
    if share is None:
        return False
    if share.ready is not None:
        holds = share.ready.record.holds
        workeroutput[HOLDS_KEY] = [h.as_dict() for h in holds]
        workeroutput[PHASES_KEY] = [dataclasses.asdict(p) for p in share.ready.record.phases]
    share.close()
    return share.ready is not None


def header(config: pytest.Config) -> str | None:
    """The report header's xdist line: how many instances the run may hold, and what that costs per hour at most."""
    state = config.stash.get(SESSION_KEY, None)
    workers = getattr(config.option, "numprocesses", None)
    if state is None or not is_xdist_controller(config) or not isinstance(workers, int) or workers < 1:
        return None
    settings = state.settings
    cap = settings.filters.max_dph
    if settings.xdist_mode == "shared" and not settings.uses_cassettes:
        return f"dumont xdist: shared, 1 instance for {workers} workers (at most ${cap:.2f}/h)"
    return f"dumont xdist: per-worker, {workers} workers x ${cap:.2f}/h = at most ${workers * cap:.2f}/h"
