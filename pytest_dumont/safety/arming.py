"""Arms a session's pool with every backstop beyond the fixture's own teardown: ledger file, watchdog, budget, meter.

Two steps, so that the provisioner is built complete and never changed once it may rent: ``backstops`` makes what the
provisioner is built with (the budget, the dead-man switch, the failed machines, the ledger file's and the watchdog's
watchers), ``arm`` starts what watches the pool it hands out (the spend meter, the renewer, the sweep of dead
sessions, parking). The bundled emulator started in-process dies with pytest and takes its instances with it, so it
gets the budget and the meter but no ledger file and no watchdog; a real API (or an emulator at an explicit URL) gets
all of them.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.failed_machines import FILE_NAME, FailedMachines
from pytest_dumont.provisioning.pool import InstancePool
from pytest_dumont.provisioning.provisioner import session_label_prefix
from pytest_dumont.safety import budget as budget_hooks
from pytest_dumont.safety.adoption import Adoption
from pytest_dumont.safety.budget import GUARD_KEY, Budget, MainThreadInterrupter, SessionGuard, SpendMeter
from pytest_dumont.safety.deadman import DeadmanSwitch, Renewer, ssh_runner
from pytest_dumont.safety.ledger_file import KEEP_DESTROYED_S, LedgerFile, LedgerWatcher, ledger_path
from pytest_dumont.safety.parked_summary import ParkedSummary
from pytest_dumont.safety.parking import Parking
from pytest_dumont.safety.reap import reap
from pytest_dumont.safety.watchdog import WatchdogLink, WatchdogWatcher
from pytest_dumont.session.state import get_state

if TYPE_CHECKING:
    from pytest_dumont.provisioning.contracts import InstanceWatcher
    from pytest_dumont.provisioning.provisioner import Deadlines
    from pytest_dumont.ssh.keys import SessionKey


class DumontLeftoverWarning(pytest.PytestWarning):
    """Something about leftover instances needs a human: read the message."""


@dataclass
class Backstops:
    """What the session's provisioner is built with, made before it exists (``backstops``)."""

    budget: Budget
    deadman: DeadmanSwitch | None = None
    failed_machines: FailedMachines | None = None  # None: this session's memory only
    ledger: LedgerFile | None = None
    ledger_watcher: LedgerWatcher | None = None
    watchdog: WatchdogWatcher | None = None

    @property
    def watchers(self) -> list[InstanceWatcher]:
        """Told of every create and its end, in this order: the ledger file first, then the watchdog."""
        return [w for w in (self.ledger_watcher, self.watchdog) if w is not None]


@dataclass
class SessionSafety:
    """What ``arm`` set up, to be closed after the pool has destroyed everything."""

    guard: SessionGuard
    watchdog: WatchdogWatcher | None = None
    ledger: LedgerWatcher | None = None
    renewer: Renewer | None = None
    failed_machines: FailedMachines | None = None
    parking: Parking | None = None  # --dumont-reuse
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Stop the meter and the renewer, then tell the watchdog goodbye (it destroys whatever is still registered)."""
        if self.renewer is not None:
            self.renewer.stop()
            self.guard.warnings.extend(dict.fromkeys(self.renewer.problems))  # each distinct problem once
        self.guard.meter.stop()
        self.guard.interrupter.uninstall()
        if self.watchdog is not None:
            try:
                self.watchdog.close()
            except DumontError as exc:
                self.guard.warnings.append(f"watchdog: {exc.message}")
        if self.ledger is not None:
            self.guard.warnings.extend(f"ledger file: {p}" for p in self.ledger.problems)
        if self.failed_machines is not None:
            self.guard.warnings.extend(self.failed_machines.problems)


def ledger_file(config: pytest.Config) -> LedgerFile:
    return LedgerFile(ledger_path(get_state(config).settings.ledger_path))


def backstops(
    config: pytest.Config, deadlines: Deadlines, api_url: str, api_key: str | None, ssh_key: SessionKey
) -> Backstops:
    """Make what the provisioner is built with; the watchdog process starts now, its start overlapping the rest."""
    state = get_state(config)
    settings = state.settings
    made = Backstops(
        Budget(
            limit_usd=settings.budget_usd,
            horizon_s=deadlines.boot + deadlines.ssh + settings.max_minutes * 60.0,
            disk_gb=settings.filters.disk_gb,
        )
    )
    if settings.deadman_ttl_min > 0 and settings.mode != "replay":
        made.deadman = DeadmanSwitch(settings.deadman_ttl_min * 60.0, api_url)  # every create carries it
    in_process_emulator = settings.mode == "emulator" and not settings.api_url_explicit
    if in_process_emulator or settings.mode == "replay":  # replay rents nothing: no ledger entry, no watchdog
        return made
    made.ledger = ledger = ledger_file(config)
    made.failed_machines = _remember_failed_machines(
        ledger.path.parent / FILE_NAME, api_url, settings.avoid_failed_hours
    )
    made.ledger_watcher = LedgerWatcher(ledger, state.session_id, api_url)
    state_dir = ledger.path.parent
    prune_old_watchdog_logs(state_dir)
    made.watchdog = WatchdogWatcher(
        lambda: WatchdogLink.spawn(
            api_url=api_url,
            api_key=api_key,
            label_prefix=session_label_prefix(state.session_id),
            ledger_path=ledger.path,
            log_path=state_dir / f"watchdog-{state.session_id}.log",
            retry_s=settings.api_retry_s,
            teardown_retry_s=settings.teardown_retry_s,
            key_dir=ssh_key.private_path.parent,
        )
    )
    made.watchdog.launch()  # its start overlaps the sweep and the offer search; the first create waits for it
    return made


def arm(config: pytest.Config, pool: InstancePool, made: Backstops, api_url: str) -> SessionSafety:
    """Start what watches ``pool``, whose provisioner was built with ``made``: the spend meter, the dead-man switch's
    renewer, the sweep of what dead sessions left, parking."""
    state = get_state(config)
    settings = state.settings
    provisioner = pool.provisioner
    deadlines = provisioner.deadlines
    interrupter = MainThreadInterrupter()
    meter = SpendMeter(
        made.budget,
        state.ledger,
        state.clock,
        tick=deadlines.poll_max,
        max_test_s=settings.max_minutes * 60.0,
        on_budget=lambda message: guard.over_budget(message),
        on_overtime=lambda instance, message: guard.overtime(instance, message),
    )
    guard = SessionGuard(pool, meter, interrupter, keep_on_failure=settings.keep_on_failure)
    interrupter.install()
    guard.meter.start()
    config.stash[GUARD_KEY] = guard
    if not config.pluginmanager.is_registered(budget_hooks):  # its hooks act on the guard; none before a pool
        config.pluginmanager.register(budget_hooks, "dumont-budget")
    safety = SessionSafety(
        guard, watchdog=made.watchdog, ledger=made.ledger_watcher, failed_machines=made.failed_machines
    )
    if made.deadman is not None:
        safety.renewer = _arm_deadman(pool, guard, made.deadman)
    if made.ledger is None:  # replay or the in-process emulator: nothing outlives the session to sweep or park
        return safety
    _sweep_dead_sessions(made.ledger, provisioner.client, guard)
    safety.parking = _arm_parking(config, pool, safety, made.ledger, api_url)
    return safety


def reuse_refusal(config: pytest.Config, environ: Mapping[str, str] | None = None) -> str | None:
    """Why ``--dumont-reuse`` cannot apply to this session, or None when it can."""
    settings = get_state(config).settings
    env = os.environ if environ is None else environ
    if settings.mode == "replay" or settings.record_mode != "none":
        return "--dumont-reuse is ignored: cassettes are replayed or recorded here, and an adopted instance has none"
    if settings.mode == "emulator" and not settings.api_url_explicit:
        return "--dumont-reuse is ignored: the bundled emulator stops with this session (give --dumont-api-url)"
    if settings.deadman_ttl_min <= 0:
        return (
            "--dumont-reuse is refused with --dumont-deadman-ttl=0: the dead-man switch is what destroys a parked "
            "instance nobody adopts. Instances are destroyed at the end as usual"
        )
    if env.get("CI", "").strip().lower() in ("true", "1", "yes") and not settings.reuse_in_ci:
        return (
            "--dumont-reuse is refused because CI=true: a CI job's next run may be on another runner, so a parked "
            "instance would bill until its deadline with nobody to adopt it. Instances are destroyed at the end as "
            "usual; add --dumont-reuse-in-ci to park anyway"
        )
    return None


def _arm_parking(
    config: pytest.Config, pool: InstancePool, safety: SessionSafety, ledger: LedgerFile, api_url: str
) -> Parking | None:
    """Park at the end, adopt before renting (``--dumont-reuse``), unless refused for this session (said why)."""
    state = get_state(config)
    if state.settings.reuse_min <= 0:
        return None
    refusal = reuse_refusal(config)
    if refusal is not None:
        safety.guard.warnings.append(refusal)
        return None
    provisioner = pool.provisioner
    assert isinstance(provisioner.deadman, DeadmanSwitch)  # armed above whenever --dumont-deadman-ttl > 0
    parking = Parking(
        minutes=state.settings.reuse_min,
        ledger=ledger,
        session_id=state.session_id,
        api_url=api_url,
        provisioner=provisioner,
        renewer=safety.renewer,
        watchdog=safety.watchdog,
        warnings=safety.guard.warnings,
    )
    pool.adopter = Adoption(
        clean=state.settings.reuse_clean,
        ledger=ledger,
        session_id=state.session_id,
        api_url=api_url,
        provisioner=provisioner,
        switch=provisioner.deadman,
        watchdog=safety.watchdog,
        warnings=safety.guard.warnings,
    )
    for name, plugin in (("dumont-parking", parking), ("dumont-parked-summary", ParkedSummary(ledger, api_url))):
        previous = config.pluginmanager.get_plugin(name)
        if previous is not None:
            config.pluginmanager.unregister(previous, name)
        config.pluginmanager.register(plugin, name)
    return parking


def prune_old_watchdog_logs(state_dir: Path) -> None:
    """Remove watchdog logs older than a week, the age at which the ledger file drops destroyed entries.

    An eventful session's log stays for a person to read (an uneventful one removes its own), but not for ever: they
    would pile up in the state dir. Best effort and cheap (a glob, a stat per log): what cannot be removed stays.
    """
    too_old = time.time() - KEEP_DESTROYED_S
    for log in state_dir.glob("watchdog-*.log"):
        with contextlib.suppress(OSError):
            if log.stat().st_mtime < too_old:
                log.unlink()


def _arm_deadman(pool: InstancePool, guard: SessionGuard, switch: DeadmanSwitch) -> Renewer:
    """A thread renews each ready instance's deadline (every create carried the switch) over its own SSH connection."""
    provisioner = pool.provisioner
    renewer = Renewer(
        switch,
        lambda: [r for r in provisioner.ledger.live() if r.ready_at is not None],
        ssh_runner(provisioner.ssh_key, provisioner.known_hosts),
    )
    renewer.start()
    guard.kept_note = (
        f". Its dead-man switch stays armed: it destroys itself {switch.ttl_s / 60:g} min after this session ends "
        "unless you push the deadline on: ssh in and run "
        f"`echo $(( $(date +%s) + 3600 )) > ~/.dumont-deadline`"
    )
    return renewer


def _remember_failed_machines(path: Path, api_url: str, hours: float) -> FailedMachines:
    """Load the machines earlier sessions saw fail on this API; a corrupt file is moved aside and warned about."""
    memory = FailedMachines(path, api_url=api_url, max_age_s=hours * 3600.0)
    for problem in memory.problems:
        warnings.warn(DumontLeftoverWarning(problem), stacklevel=3)
    return memory


def _sweep_dead_sessions(ledger: LedgerFile, client: object, guard: SessionGuard) -> None:
    """Destroy what sessions that died on this machine left in the ledger file for this API."""
    try:
        report = reap(client, ledger=ledger)
    except DumontError as exc:
        message = f"could not sweep instances left by earlier sessions: {exc.message}"
        guard.warnings.append(message)
        warnings.warn(DumontLeftoverWarning(message), stacklevel=2)
        return
    for instance_id, label in report.destroyed:
        guard.warnings.append(f"destroyed instance {instance_id} ({label}), left running by an earlier session")
    for instance_id, reason in report.failed:
        guard.warnings.append(f"instance {instance_id} left by an earlier session could not be destroyed: {reason}")
