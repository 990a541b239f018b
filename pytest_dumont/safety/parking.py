"""``--dumont-reuse``: park a session's instances at its end; the next session asking alike adopts one.

Parking an instance (only when the session ends cleanly, never after an interrupt or from a signal handler):

1. the renewer stops, and the dead-man deadline on the instance becomes now + MINUTES (``safety.deadman``): if no
   session adopts it by then, the instance destroys itself, whether or not this machine is still there;
2. the session key and the instance's pinned known_hosts line are copied, 0600, into ``<state dir>/parked/<label>/``;
3. the ledger file marks the entry ``parked`` with a fingerprint of what was asked (API, filters, image, disk, env,
   onstart: a hash only, env values never stored) and what the next session needs (SSH address, key dir, offer);
4. only then the watchdog is told to spare it (``keep``): a session that dies before this point loses the instance
   to its watchdog, as it would have without reuse.

Adopting, before anything is rented: the entry is claimed under the ledger file's lock (state ``adopting``, this
process's pid), so two sessions never take the same instance; the watchdog registers it at once (a session killed
while adopting loses it to its watchdog; one killed before that leaves an ``adopting`` entry of a dead pid, which
``reap`` destroys); then the API must say it is running, SSH must answer with the pinned host key, and the deadline
is pushed on. An instance that fails any of these is destroyed and its entry cleaned; the next candidate is tried, and
with none left the session rents as usual. The time it spent parked is billed to the adopting session's record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dumont.errors import BudgetExceeded, DumontError, HostKeyChanged, InstanceNotFound
from pytest_dumont.provisioning.records import InstanceRecord, TimedPhase
from pytest_dumont.safety.budget import Budget
from pytest_dumont.safety.deadman import DeadmanSwitch, ssh_runner
from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile
from pytest_dumont.secrets.redact import redact
from pytest_dumont.vast.models import Offer, StatusChange

if TYPE_CHECKING:
    from pytest_dumont.provisioning.provisioner import Provisioner, ProvisionRequest, ReadyInstance
    from pytest_dumont.safety.deadman import Renewer
    from pytest_dumont.safety.watchdog import WatchdogWatcher

ADOPT_MARGIN_S = 30.0  # never adopt an instance that destroys itself sooner than this
SSH_TIMEOUT_S = 10.0
CLEAN_COMMAND = "if [ -d /workspace ]; then find /workspace -mindepth 1 -delete; fi"
KEY_NAME = "id_ed25519"
PUBLIC_NAME = "id_ed25519.pub"
KNOWN_HOSTS_NAME = "known_hosts"


def fingerprint(request: ProvisionRequest, api_url: str) -> str:
    """What was asked, hashed: a session adopts only an instance parked for exactly the same request on the same API."""
    data = {
        "version": 1,
        "api_url": api_url.rstrip("/"),
        "filters": request.filters.key_fields(),
        "image": request.image,
        "onstart": request.onstart,
        "env": sorted(request.env),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def describe(request: ProvisionRequest) -> str:
    """What was asked, for people (``dumont parked``): no env values, they may be secret."""
    env = f", env {', '.join(sorted(k for k, _ in request.env))}" if request.env else ""
    onstart = ", with onstart" if request.onstart else ""
    return f"{request.image} on {request.filters.describe()}, {request.filters.disk_gb:g} GB{env}{onstart}"


@dataclass(frozen=True)
class ParkedInfo:
    """What a parked entry holds beside the ledger's own fields; ``from_entry`` refuses anything malformed."""

    fingerprint: str
    describe: str
    parked_at: float  # epoch seconds
    expires: float  # epoch seconds: the dead-man deadline written on the instance
    host: str
    port: int
    key_dir: str
    offer: dict[str, Any]
    disk_gb: float
    dph_total: float

    @classmethod
    def from_entry(cls, entry: LedgerEntry) -> ParkedInfo:
        data = entry.parking
        if not isinstance(data, dict) or entry.instance_id is None:
            raise ValueError("no parking data or no instance id")
        try:
            info = cls(
                fingerprint=str(data["fingerprint"]),
                describe=str(data.get("describe", "")),
                parked_at=float(data["parked_at"]),
                expires=float(data["expires"]),
                host=str(data["host"]),
                port=int(data["port"]),
                key_dir=str(data["key_dir"]),
                offer=dict(data["offer"]),
                disk_gb=float(data["disk_gb"]),
                dph_total=float(entry.dph_total),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed parking data ({type(exc).__name__}: {exc})") from None
        if len(info.fingerprint) != 64 or not 0 < info.port < 65536:
            raise ValueError("malformed parking data (fingerprint or port)")
        return info

    def cost_so_far(self, now: float) -> float:
        """What the instance has billed while parked (dph_total x time since it was parked, up to its deadline)."""
        return self.dph_total * max(0.0, min(now, self.expires) - self.parked_at) / 3600.0

    def foreign(self, state_dir: Path) -> str | None:
        """Why this machine and user cannot use the entry's key files, or None when it can."""
        key_dir = Path(self.key_dir)
        parked_root = (state_dir / "parked").resolve()
        if key_dir.resolve().parent != parked_root:
            return f"its key directory {key_dir} is not under {parked_root}"
        try:
            for name in (KEY_NAME, PUBLIC_NAME, KNOWN_HOSTS_NAME):
                status = (key_dir / name).stat()
                if status.st_uid != os.getuid():
                    return f"{key_dir / name} belongs to another user"
                if name != PUBLIC_NAME and stat.S_IMODE(status.st_mode) & 0o077:
                    return f"{key_dir / name} is readable by others"
        except OSError as exc:
            return f"its key files are missing ({exc.strerror}: {key_dir})"
        return None


def parked_entries(ledger: LedgerFile, api_url: str | None = None) -> list[tuple[LedgerEntry, ParkedInfo | None]]:
    """Every parked entry (of ``api_url``, if given), with its data, or None where that data is malformed."""
    found: list[tuple[LedgerEntry, ParkedInfo | None]] = []
    for entry in ledger.entries():
        if entry.state != "parked":
            continue
        if api_url is not None and entry.api_url.rstrip("/") != api_url.rstrip("/"):
            continue
        try:
            found.append((entry, ParkedInfo.from_entry(entry)))
        except ValueError:
            found.append((entry, None))
    return found


def remove_key_dir(entry: LedgerEntry, state_dir: Path) -> None:
    """Remove a parked entry's key files (once it is adopted, released or gone); only ever under the state dir."""
    data = entry.parking if isinstance(entry.parking, dict) else {}
    key_dir = Path(str(data.get("key_dir", "")))
    if data.get("key_dir") and key_dir.resolve().parent == (state_dir / "parked").resolve():
        shutil.rmtree(key_dir, ignore_errors=True)


def loud_line(instance_id: int, dph_total: float, expires: float) -> str:
    until = time.strftime("%H:%M", time.localtime(expires))
    return f"PARKED instance {instance_id} billing ${dph_total:.2f}/h until {until} - dumont release {instance_id}"


def _host_lines(known_hosts: Path, host: str, port: int) -> list[str]:
    name = host if port == 22 else f"[{host}]:{port}"
    try:
        text = known_hosts.read_text(encoding="ascii")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.split(" ", 1)[0] == name]


class ParkedSummary:
    """A pytest plugin that ends the terminal summary with a loud line per instance parked for this API."""

    def __init__(self, ledger: LedgerFile, api_url: str) -> None:
        self.ledger = ledger
        self.api_url = api_url.rstrip("/")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        try:
            entries = parked_entries(self.ledger, self.api_url)
        except DumontError as exc:
            terminalreporter.write_line(f"DUMONT WARNING: cannot list parked instances: {exc.message}", red=True)
            return
        for entry, info in entries:
            if info is not None and entry.instance_id is not None and info.expires > time.time():
                line = loud_line(entry.instance_id, info.dph_total, info.expires)
                terminalreporter.write_line(line, red=True, bold=True)


class Parking:
    """One session's side of reuse: parks its clean instances at the end, adopts parked ones before renting.

    Also a pytest plugin (registered by ``safety.arming``, beside a ``ParkedSummary``): it learns of an interrupt.
    """

    def __init__(
        self,
        *,
        minutes: float,
        clean: bool,
        ledger: LedgerFile,
        session_id: str,
        api_url: str,
        provisioner: Provisioner,
        switch: DeadmanSwitch,
        renewer: Renewer | None,
        watchdog: WatchdogWatcher | None,
        warnings: list[str],
    ) -> None:
        self.minutes = minutes
        self.clean = clean
        self.ledger = ledger
        self.state_dir = ledger.path.parent
        self.session_id = session_id
        self.api_url = api_url.rstrip("/")
        self.provisioner = provisioner
        self.switch = switch
        self.renewer = renewer
        self.watchdog = watchdog
        self.warnings = warnings  # the session guard's: shown as DUMONT WARNING lines in the summary
        self.interrupted = False
        self.ending = False
        self.parked: list[InstanceRecord] = []
        self.adopted: list[InstanceRecord] = []
        self._warned: set[str] = set()

    # --- pytest hooks -------------------------------------------------------------------------------------------

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True  # Ctrl-C, SIGTERM or SIGHUP: the session's instances are destroyed, never parked

    # --- parking ------------------------------------------------------------------------------------------------

    def session_ending(self) -> None:
        """The pool is being closed on the session's normal path (not from a signal handler, nor at exit)."""
        self.ending = True

    def park_if_clean(self, request: ProvisionRequest, instance: ReadyInstance) -> bool:
        """The pool's ``park``: parks ``instance`` if the session ended cleanly and the instance is sound."""
        if not self.ending or self.interrupted:
            return False
        return self.park(request, instance)

    def park(self, request: ProvisionRequest, instance: ReadyInstance) -> bool:
        """Park ``instance``; False (then the pool destroys it) when any step fails."""
        record = instance.record
        if record.failure or record.ready_at is None or record.ssh_address is None:
            return False
        if self.renewer is not None:
            self.renewer.stop()  # else a renewal could push the deadline past the parking's
        seconds = self.minutes * 60.0
        expires = time.time() + seconds
        run = ssh_runner(self.provisioner.ssh_key, self.provisioner.known_hosts, timeout=SSH_TIMEOUT_S)
        try:
            run(record, DeadmanSwitch(seconds).renew_command())  # its own connection: the test's is timed, recorded
        except Exception as exc:
            self._warn(f"instance {record.instance_id} could not be parked (setting its deadline: {exc}); destroyed")
            return False
        host, port = record.ssh_address
        key_dir = self.state_dir / "parked" / record.label
        try:
            self._save_keys(key_dir, host, port)
            info = {
                "fingerprint": fingerprint(request, self.api_url),
                "describe": describe(request),
                "parked_at": time.time(),
                "expires": expires,
                "host": host,
                "port": port,
                "key_dir": str(key_dir),
                "offer": dict(record.offer.raw),
                "disk_gb": record.disk_gb,
            }
            self._mark_parked(record, info)
        except (OSError, DumontError, ValueError) as exc:
            shutil.rmtree(key_dir, ignore_errors=True)
            self._warn(f"instance {record.instance_id} could not be parked ({exc}); destroyed")
            return False
        if self.watchdog is not None:
            try:
                self.watchdog.ended(record.label, record.instance_id, "parked")  # from now on it spares it
            except DumontError as exc:  # it would destroy the instance at goodbye: destroy it now, as unparked
                shutil.rmtree(key_dir, ignore_errors=True)
                with contextlib.suppress(DumontError):
                    self._set_entry(record.label, state="live", note="parking undone", parking=None)
                self._warn(f"instance {record.instance_id} not parked: the watchdog did not answer ({exc.message})")
                return False
        record.parked_at = self.provisioner.clock.now()
        record.parked_until = expires
        self.parked.append(record)
        with contextlib.suppress(Exception):
            instance.connection.close()
        return True

    def _save_keys(self, key_dir: Path, host: str, port: int) -> None:
        pinned = _host_lines(self.provisioner.known_hosts, host, port)
        if not pinned:
            raise ValueError(f"no pinned host key for {host}:{port}")
        key = self.provisioner.ssh_key
        shutil.rmtree(key_dir, ignore_errors=True)
        key_dir.mkdir(mode=0o700, parents=True)
        os.chmod(key_dir.parent, 0o700)
        for name, data, mode in (
            (KEY_NAME, key.private_path.read_bytes(), 0o600),
            (PUBLIC_NAME, (key.public_openssh + "\n").encode("ascii"), 0o600),
            (KNOWN_HOSTS_NAME, ("\n".join(pinned) + "\n").encode("ascii"), 0o600),
        ):
            fd = os.open(key_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)

    def _mark_parked(self, record: InstanceRecord, info: dict[str, Any]) -> None:
        found: list[LedgerEntry] = []

        def change(entries: list[LedgerEntry]) -> None:
            for entry in entries:
                if entry.label == record.label and entry.live:
                    entry.instance_id = record.instance_id
                    entry.state = "parked"
                    entry.parking = info
                    entry.pid = os.getpid()
                    entry.note = f"parked by session {self.session_id}"
                    entry.updated = time.time()
                    found.append(entry)

        self.ledger.update(change)
        if not found:
            raise ValueError("the ledger file has no live entry for it")

    # --- adopting -----------------------------------------------------------------------------------------------

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
        """Under the ledger file's lock: take the matching parked entry that lives longest, marking it ``adopting``."""
        chosen: list[tuple[LedgerEntry, ParkedInfo]] = []

        def change(entries: list[LedgerEntry]) -> None:
            now = time.time()
            candidates: list[tuple[LedgerEntry, ParkedInfo]] = []
            for entry in entries:
                if entry.state != "parked" or entry.api_url.rstrip("/") != self.api_url:
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
                entry.state = "adopting"
                entry.session = self.session_id
                entry.pid = os.getpid()
                entry.host = socket.gethostname()
                entry.note = f"being adopted by session {self.session_id}"
                entry.updated = now
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
                self._set_entry(entry.label, state="parked", note=entry.note)
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
            self._set_entry(entry.label, state="parked", note=entry.note)
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
            self._set_entry(entry.label, state="live", note=f"adopted by session {self.session_id}", parking=None)
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
                self._set_entry(entry.label, state="destroyed", note=f"not adopted: it {why}")
        except DumontError as exc:
            self._warn(f"parked instance {record.instance_id} could not be destroyed: {exc.message}; `dumont reap`")
        remove_key_dir(entry, self.state_dir)

    def _set_entry(self, label: str, *, state: str, note: str, parking: Any = ...) -> None:
        def change(entries: list[LedgerEntry]) -> None:
            for entry in entries:
                if entry.label == label:
                    entry.state = state
                    entry.note = redact(note)
                    entry.updated = time.time()
                    if parking is not ...:
                        entry.parking = parking

        self.ledger.update(change)

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(redact(message))
