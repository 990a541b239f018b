"""The ledger file of live instances: whatever a dead session left behind can be found (and ``safety.reap``
destroys it).

The ledger file is JSON (``{"version": 1, "entries": [...]}``), one entry per instance a session created on this
machine: session, label, API URL, created (epoch seconds), $/h and state (``creating``, ``live``, ``kept``,
``teardown_failed``, ``parked``, ``adopting``, ``releasing``, ``destroyed``); a parked entry (``--dumont-reuse``)
also holds what the next session needs to adopt it, under ``parking`` (``safety.parked``). Writers take an exclusive
``flock`` on ``<file>.lock`` and replace the file atomically, so a crash mid-write leaves the previous version.
Destroyed entries are kept a week, at most the newest 200, as an audit trail. A file that cannot be parsed is never
overwritten: every write refuses with ``LedgerFileError`` naming it, and ``dumont reap --label-prefix`` still works
without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_dumont.errors import DumontError, LedgerFileError
from pytest_dumont.secrets.redact import redact
from pytest_dumont.statefile import LockTimeout, exclusive_lock, write_atomic

if TYPE_CHECKING:
    from pytest_dumont.provisioning.records import InstanceRecord
    from pytest_dumont.vast.models import Offer

LIVE_STATES = ("creating", "live", "kept", "teardown_failed", "parked", "adopting", "releasing")
KEEP_DESTROYED_S = 7 * 24 * 3600.0  # destroyed entries are kept a week as an audit trail, then pruned
# ... and only the newest of them: every rental rewrites the file three times, so its size is each rental's cost.
KEEP_DESTROYED_MAX = 200
LOCK_TIMEOUT_S = 10.0


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/pytest-dumont``, else ``~/.local/state/pytest-dumont``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "pytest-dumont"


def ledger_path(configured: str | None) -> Path:
    """The ledger file a session writes and ``dumont reap`` reads: the one configured, else the state dir's."""
    return Path(configured).expanduser() if configured else default_state_dir() / "ledger.json"


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass
class LedgerEntry:
    """One instance as the ledger file knows it."""

    label: str
    session: str
    api_url: str
    created: float  # epoch seconds
    dph_total: float
    instance_id: int | None = None
    state: str = "creating"
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    note: str = ""
    updated: float = field(default_factory=time.time)
    parking: dict[str, Any] | None = None  # state parked: fingerprint, deadline, SSH address, key dir, offer

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def owner_running(self) -> bool:
        """Whether the pytest process that created it is still running here (then it is not a leftover)."""
        return self.host == socket.gethostname() and self.pid != os.getpid() and process_alive(self.pid)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerEntry:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def _pruned(entries: list[LedgerEntry], now: float) -> list[LedgerEntry]:
    """Every live entry; of the others, those of the last week, at most the newest ``KEEP_DESTROYED_MAX``."""
    recent = [e for e in entries if not e.live and now - e.updated < KEEP_DESTROYED_S]
    kept = {id(e) for e in sorted(recent, key=lambda e: e.updated)[-KEEP_DESTROYED_MAX:]}
    return [e for e in entries if e.live or id(e) in kept]


class LedgerFile:
    """The ledger file: read without a lock, changed under an exclusive lock with an atomic replace."""

    def __init__(self, path: Path, *, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"LedgerFile({str(self.path)!r})"

    def entries(self) -> list[LedgerEntry]:
        """Every entry; a missing file is an empty ledger, an unreadable one raises ``LedgerFileError``."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LedgerFileError(f"cannot read the ledger file {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
            rows = data["entries"]
            if not isinstance(rows, list):
                raise TypeError("entries is not a list")
            return [LedgerEntry.from_json(row) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerFileError(
                f"the ledger file {self.path} is corrupt ({type(exc).__name__}: {exc}); it was left as it is. "
                f"Move it aside (mv {self.path} {self.path}.bad), destroy leftovers with "
                "`dumont reap --label-prefix dumont-`, and look in the moved file for instance ids"
            ) from None

    def live(self) -> list[LedgerEntry]:
        return [e for e in self.entries() if e.live]

    def update(self, change: Callable[[list[LedgerEntry]], None]) -> None:
        """Apply ``change`` to the entries under the lock and write them back atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            entries = self.entries()
            change(entries)
            self._write(_pruned(entries, time.time()))

    def _write(self, entries: list[LedgerEntry]) -> None:
        # One entry per line: as easy to read as an indented file, and encoded by json's C encoder (indent= makes
        # it fall back to its pure-Python one; the whole write is 1.3 times faster for it, bench/bench_ledger.py).
        lines = ",\n".join(json.dumps(asdict(e)) for e in entries)
        write_atomic(self.path, f'{{"version": 1, "entries": [\n{lines}\n]}}\n', durable=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            with exclusive_lock(lock_path, self.lock_timeout):
                yield
        except LockTimeout as exc:
            raise LedgerFileError(
                f"the ledger file {self.path} stayed locked for {self.lock_timeout:g} s "
                f"(held by pid {exc.holder}); nothing was changed. If that process is gone, "
                f"remove {lock_path}"
            ) from None

    # --- what sessions record ---------------------------------------------------------------------------------

    def expecting(self, entry: LedgerEntry) -> None:
        """Before a create: if the process dies now, the label is enough to find what was rented."""
        self.update(lambda entries: entries.append(entry))

    def created(self, label: str, instance_id: int) -> None:
        self._set(label=label, instance_id=instance_id, state="live")

    def settle(self, label: str, instance_id: int | None, state: str, note: str = "") -> None:
        """Record how an instance ended, found by its label (unique per session) or else its id."""

        def change(entries: list[LedgerEntry]) -> None:
            for entry in entries:
                if entry.label == label or (instance_id is not None and entry.instance_id == instance_id):
                    entry.instance_id = instance_id if instance_id is not None else entry.instance_id
                    entry.state = state
                    entry.note = redact(note)
                    entry.updated = time.time()

        self.update(change)

    def _set(self, *, instance_id: int, state: str, label: str | None = None, note: str = "") -> None:
        def change(entries: list[LedgerEntry]) -> None:
            for entry in entries:
                if (label is not None and entry.label == label) or (label is None and entry.instance_id == instance_id):
                    entry.instance_id = instance_id
                    entry.state = state
                    entry.note = redact(note)
                    entry.updated = time.time()

        self.update(change)


class LedgerWatcher:
    """Keeps the ledger file in step with one session's instances (a ``lifecycle.InstanceWatcher``)."""

    _STATES = {"destroyed": "destroyed", "nothing_rented": "destroyed", "teardown_failed": "teardown_failed"}

    def __init__(self, ledger: LedgerFile, session_id: str, api_url: str) -> None:
        self.ledger = ledger
        self.session_id = session_id
        self.api_url = api_url
        self.problems: list[str] = []  # ledger writes that failed after the fact, for the terminal summary

    def expecting(self, label: str, offer: Offer) -> None:
        entry = LedgerEntry(label, self.session_id, self.api_url, created=time.time(), dph_total=offer.dph_total)
        self.ledger.expecting(entry)  # raises LedgerFileError: then nothing is created

    def created(self, record: InstanceRecord) -> None:
        self.ledger.created(record.label, record.instance_id)

    def ended(self, label: str, instance_id: int | None, outcome: str, note: str = "") -> None:
        try:
            self.ledger.settle(label, instance_id, self._STATES.get(outcome, outcome), note or outcome)
        except DumontError as exc:
            self.problems.append(exc.message)
