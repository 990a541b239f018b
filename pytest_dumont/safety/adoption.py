"""``--dumont-reuse`` before renting: a session adopts an instance an earlier one parked for the same request.

The entry is claimed first (``safety.parked``: ``adopting`` under the ledger file's lock, this process's pid), so
two sessions, or a session and ``dumont release``, never act on the same instance. The watchdog registers it at once
(a session killed while adopting loses it to its watchdog; one killed before that leaves an ``adopting`` entry of a
dead pid, which ``reap`` destroys). Then the API must say it is running, SSH must answer with the pinned host key,
and the deadline is pushed on. An instance that fails any of these is destroyed and its entry cleaned; the next
candidate is tried, and with none left the session rents as usual. The time it spent parked is billed to the
adopting session's record, and counted by its budget.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_dumont.errors import BudgetExceeded, DumontError, HostKeyChanged, InstanceNotFound
from pytest_dumont.provisioning.records import InstanceRecord, TimedPhase
from pytest_dumont.safety.budget import Budget
from pytest_dumont.safety.deadman import DeadmanSwitch
from pytest_dumont.safety.fingerprint import fingerprint
from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile
from pytest_dumont.safety.parked import (
    KEY_NAME,
    KNOWN_HOSTS_NAME,
    PUBLIC_NAME,
    SSH_TIMEOUT_S,
    ParkedInfo,
    claim,
    remove_key_dir,
    same_api,
    settle_claim,
)
from pytest_dumont.secrets.redact import redact
from pytest_dumont.vast.models import Offer, StatusChange

if TYPE_CHECKING:
    from pytest_dumont.provisioning.provisioner import Provisioner, ProvisionRequest, ReadyInstance
    from pytest_dumont.safety.watchdog import WatchdogWatcher

ADOPT_MARGIN_S = 30.0  # never adopt an instance that destroys itself sooner than this
CLEAN_COMMAND = "if [ -d /workspace ]; then find /workspace -mindepth 1 -delete; fi"


class Adoption:
    """One session's adoptions: the pool's ``adopter``, asked before anything is rented."""

    def __init__(
        self,
        *,
        clean: bool,
        ledger: LedgerFile,
        session_id: str,
        api_url: str,
        provisioner: Provisioner,
        switch: DeadmanSwitch,
        watchdog: WatchdogWatcher | None,
        warnings: list[str],
    ) -> None:
        self.clean = clean
        self.ledger = ledger
        self.state_dir = ledger.path.parent
        self.session_id = session_id
        self.api_url = api_url.rstrip("/")
        self.provisioner = provisioner
        self.switch = switch
        self.watchdog = watchdog
        self.warnings = warnings  # the session guard's: shown as DUMONT WARNING lines in the summary
        self.adopted: list[InstanceRecord] = []

    def adopt(self, request: ProvisionRequest) -> ReadyInstance | None:
        """A parked instance for ``request``, ready; None when none can be adopted (then the session rents)."""
        wanted = fingerprint(request, self.api_url)
        while True:
            try:
                claimed = self._claim(wanted)
            except DumontError as exc:
                self._warn(f"no parked instance adopted: {exc.message}")
                return None
            if claimed is None:
                return None
            ready = self._take(*claimed)
            if ready is not None:
                self.adopted.append(ready.record)
                return ready

    def _claim(self, wanted: str) -> tuple[LedgerEntry, ParkedInfo] | None:
        """Under the ledger file's lock: claim the matching parked entry that lives longest."""
        chosen: list[tuple[LedgerEntry, ParkedInfo]] = []

        def change(entries: list[LedgerEntry]) -> None:
            now = time.time()
            candidates: list[tuple[LedgerEntry, ParkedInfo]] = []
            for entry in entries:
                if entry.state != "parked" or not same_api(entry, self.api_url):
                    continue
                try:
                    info = ParkedInfo.from_entry(entry)
                except ValueError as exc:
                    self._warn(f"skipped the corrupt parked entry {entry.label} in {self.ledger.path}: {exc}")
                    continue
                problem = info.foreign(self.state_dir)
                if problem is not None:
                    self._warn(f"skipped the parked entry {entry.label} (instance {entry.instance_id}): {problem}")
                    continue
                if info.fingerprint == wanted and info.expires - now > ADOPT_MARGIN_S:
                    candidates.append((entry, info))
            if candidates:
                entry, info = max(candidates, key=lambda pair: pair[1].expires)
                claim(entry, "adopting", f"being adopted by session {self.session_id}", session=self.session_id)
                chosen.append((entry, info))

        self.ledger.update(change)
        return chosen[0] if chosen else None

    def _take(self, entry: LedgerEntry, info: ParkedInfo) -> ReadyInstance | None:
        """Check the claimed instance and hand it over; an unusable one is destroyed and its entry cleaned."""
        from pytest_dumont.provisioning.contracts import ReadyInstance
        from pytest_dumont.ssh.connect import SSHTarget, connect, run_checked
        from pytest_dumont.ssh.keys import SessionKey

        assert entry.instance_id is not None  # ParkedInfo.from_entry checked it
        clock = self.provisioner.clock
        started, parked_for = clock.now(), max(0.0, time.time() - info.parked_at)
        offer = Offer.from_api(info.offer)
        record = InstanceRecord(
            instance_id=entry.instance_id,
            label=entry.label,
            offer=offer,
            disk_gb=info.disk_gb,
            search_started_at=started,
            created_at=started,
            running_at=started,
            ssh_address=(info.host, info.port),
        )
        if self.watchdog is not None:  # from here a killed session loses the instance to its watchdog
            try:
                self.watchdog.expecting(entry.label, offer)
                self.watchdog.created(record)
            except DumontError:
                self._unclaim(entry.label)
                raise
        refusal = self._over_budget(offer, parked_for)
        if refusal is not None:
            self._discard(entry, record, "was not adopted: it would pass the budget", destroy=True)
            raise BudgetExceeded(refusal)
        try:
            instance = self.provisioner.client.show_instance(entry.instance_id)
        except InstanceNotFound:
            instance = None
        except DumontError as exc:  # cannot tell now: it stays parked for another try
            if self.watchdog is not None:
                self.watchdog.ended(entry.label, entry.instance_id, "parked")
            self._unclaim(entry.label)
            self._warn(f"parked instance {entry.instance_id} not adopted: the API did not answer ({exc.message})")
            return None
        if instance is None:
            self._discard(entry, record, "was destroyed elsewhere", destroy=False)
            return None
        if not instance.is_running:
            self._discard(entry, record, f"is not running ({instance.status})", destroy=True)
            return None
        key_dir = Path(info.key_dir)
        try:
            pinned = (key_dir / KNOWN_HOSTS_NAME).read_text(encoding="ascii")
            key = SessionKey(key_dir / KEY_NAME, (key_dir / PUBLIC_NAME).read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError) as exc:
            self._discard(entry, record, f"has unreadable key files ({exc})", destroy=True)
            return None
        target = SSHTarget(info.host, info.port)
        try:
            connection = connect(target, key, key_dir / KNOWN_HOSTS_NAME, timeout=SSH_TIMEOUT_S)
        except HostKeyChanged:
            self._discard(entry, record, "presented another host key than the one pinned when it was parked", True)
            return None
        except Exception as exc:
            self._discard(entry, record, f"did not answer SSH ({type(exc).__name__}: {exc})", destroy=True)
            return None
        try:
            run_checked(connection, self.switch.renew_command(), timeout=SSH_TIMEOUT_S)
            if self.clean:
                run_checked(connection, CLEAN_COMMAND, timeout=60.0)
            self.provisioner.client.attach_ssh_key(entry.instance_id, self.provisioner.ssh_key.public_openssh)
        except Exception as exc:
            with contextlib.suppress(Exception):
                connection.close()
            self._discard(entry, record, f"could not be taken over ({type(exc).__name__}: {exc})", destroy=True)
            return None
        known_hosts = self.provisioner.known_hosts
        known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with known_hosts.open("a", encoding="ascii") as stream:  # the renewer and xdist workers check against it
            stream.write(pinned if pinned.endswith("\n") else pinned + "\n")
        now = clock.now()
        record.ready_at = now
        record.timeline.append(StatusChange(at=0.0, status="running", status_msg="adopted, parked before"))
        TimedPhase(record.phases, "adopt", clock, entry.instance_id, started=started).end(at=now)
        record.parked_before_s = parked_for
        record.parked_before_usd = record.dph_total * parked_for / 3600.0
        self.provisioner.ledger.add(record)
        try:
            settle_claim(
                self.ledger, entry.label, state="live", note=f"adopted by session {self.session_id}", parking=None
            )
        except DumontError as exc:
            self._warn(f"adopted instance {entry.instance_id}, but the ledger file was not updated: {exc.message}")
        remove_key_dir(entry, self.state_dir)
        return ReadyInstance(record=record, target=target, connection=connection)

    def _over_budget(self, offer: Offer, parked_for: float) -> str | None:
        """Why adopting would pass ``--dumont-budget``: its time parked is this session's spend, plus the rental's
        projection (``safety.budget``). Then it is destroyed: parked again, it would bill on with nobody to pay."""
        budget = self.provisioner.budget
        if not isinstance(budget, Budget):
            return None
        parked_usd = offer.dph_total * parked_for / 3600.0
        projected = budget.projected(offer, self.provisioner.ledger, self.provisioner.clock.now()) + parked_usd
        if projected <= budget.limit_usd:
            return None
        return (
            f"adopting parked instance ({offer.gpu_name}, ${offer.dph_total:.4f}/h) projects ${projected:.4f}, "
            f"${parked_usd:.4f} of it parked before this session, over --dumont-budget=${budget.limit_usd:g}: "
            "it was destroyed. Raise the budget, or release parked instances sooner (`dumont release`)"
        )

    def _discard(self, entry: LedgerEntry, record: InstanceRecord, why: str, destroy: bool) -> None:
        """An unusable parked instance: destroy it if it still exists, clean its entry and keys, and say so."""
        self._warn(f"parked instance {record.instance_id} {why}: not adopted, the entry cleaned")
        try:
            if destroy:
                self.provisioner.destroy(record)  # tells the watchdog and settles the ledger entry
            else:
                if self.watchdog is not None:
                    self.watchdog.ended(entry.label, record.instance_id, "destroyed")
                settle_claim(self.ledger, entry.label, state="destroyed", note=f"not adopted: it {why}")
        except DumontError as exc:
            self._warn(f"parked instance {record.instance_id} could not be destroyed: {exc.message}; `dumont reap`")
        remove_key_dir(entry, self.state_dir)

    def _unclaim(self, label: str) -> None:
        """Give a claimed entry back, parked as it was: this session could not tell whether it is usable."""
        settle_claim(self.ledger, label, state="parked", note=f"parked (session {self.session_id} did not adopt it)")

    def _warn(self, message: str) -> None:
        message = redact(message)
        if message not in self.warnings:
            self.warnings.append(message)
