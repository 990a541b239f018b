"""Parked entries of the ledger file: what one holds, where its keys are, and the claim that lets one process act on it.

A parked entry (``--dumont-reuse``) carries, under ``parking``, what the next session needs to adopt the instance:
the request's fingerprint, the dead-man deadline, the SSH address, the offer and a key directory
``<state dir>/parked/<label>/`` (0700) holding the session key and the pinned known_hosts line (0600).

Whoever acts on a parked instance (a session adopting it, ``dumont release`` destroying it) first **claims** its
entry under the ledger file's lock: ``parked`` becomes ``adopting`` or ``releasing`` with the claimer's pid, in one
locked read-change-write. Only a ``parked`` entry can be claimed, so two processes never act on the same instance,
and the claimer alone settles it afterwards. A claimer that dies leaves its claim to ``reap`` (the entry is live and
its process gone), as any other leftover.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile
from pytest_dumont.secrets.redact import redact

KEY_NAME = "id_ed25519"
PUBLIC_NAME = "id_ed25519.pub"
KNOWN_HOSTS_NAME = "known_hosts"
SSH_TIMEOUT_S = 10.0  # each SSH connection or command to a parked instance, on parking and on adopting
CLAIM_STATES = ("adopting", "releasing")


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


def same_api(entry: LedgerEntry, api_url: str) -> bool:
    return entry.api_url.rstrip("/") == api_url.rstrip("/")


def parked_entries(ledger: LedgerFile, api_url: str | None = None) -> list[tuple[LedgerEntry, ParkedInfo | None]]:
    """Every parked entry (of ``api_url``, if given), with its data, or None where that data is malformed."""
    found: list[tuple[LedgerEntry, ParkedInfo | None]] = []
    for entry in ledger.entries():
        if entry.state != "parked" or (api_url is not None and not same_api(entry, api_url)):
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


def claim(entry: LedgerEntry, state: str, note: str, *, session: str | None = None) -> None:
    """Inside a ``LedgerFile.update``: make a parked ``entry`` this process's to act on (``adopting``/``releasing``)."""
    assert entry.state == "parked" and state in CLAIM_STATES
    entry.state = state
    if session is not None:
        entry.session = session
    entry.pid = os.getpid()
    entry.host = socket.gethostname()
    entry.note = note
    entry.updated = time.time()


def claimed_by(entry: LedgerEntry) -> str:
    """Who holds a claimed entry, for people."""
    if entry.state == "adopting":
        return f"being adopted by session {entry.session} (pid {entry.pid})"
    return f"being released by `dumont release` (pid {entry.pid})"


def settle_claim(ledger: LedgerFile, label: str, *, state: str, note: str, parking: Any = ...) -> bool:
    """Settle the entry this process claimed (``parked`` again, ``live`` once adopted, ``destroyed``); False when it
    no longer holds that claim (then the entry is someone else's and is left as it is)."""
    settled: list[LedgerEntry] = []
    host, pid = socket.gethostname(), os.getpid()

    def change(entries: list[LedgerEntry]) -> None:
        for entry in entries:
            if entry.label == label and entry.state in CLAIM_STATES and entry.pid == pid and entry.host == host:
                entry.state = state
                entry.note = redact(note)
                entry.updated = time.time()
                if parking is not ...:
                    entry.parking = parking
                settled.append(entry)

    ledger.update(change)
    return bool(settled)
