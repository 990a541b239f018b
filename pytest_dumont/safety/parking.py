"""``--dumont-reuse`` at a session's end: its instances are parked for the next session instead of destroyed.

Only when the session ends cleanly, never after an interrupt, from a signal handler or at exit; and in this order,
so that every way out still ends in a destroy:

1. the renewer stops, and the dead-man deadline on the instance becomes now + MINUTES (``safety.deadman``): if no
   session adopts it by then, the instance destroys itself, whether or not this machine is still there;
2. the session key and the instance's pinned known_hosts line are copied, 0600, into ``<state dir>/parked/<label>/``;
3. the ledger file marks the entry ``parked`` with a fingerprint of what was asked (``safety.fingerprint``) and what
   the next session needs (SSH address, key dir, offer; ``safety.parked``);
4. only then the watchdog is told to spare it (``keep``): a session that dies before this point loses the instance
   to its watchdog, as it would have without reuse.

Any step failing leaves the instance to the pool, which destroys it. ``safety.adoption`` is the other half.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.safety.deadman import DeadmanSwitch, ssh_runner
from pytest_dumont.safety.fingerprint import describe, fingerprint
from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile
from pytest_dumont.safety.parked import KEY_NAME, KNOWN_HOSTS_NAME, PUBLIC_NAME, SSH_TIMEOUT_S
from pytest_dumont.secrets.redact import redact

if TYPE_CHECKING:
    from pytest_dumont.provisioning.provisioner import Provisioner, ProvisionRequest, ReadyInstance
    from pytest_dumont.safety.deadman import Renewer
    from pytest_dumont.safety.watchdog import WatchdogWatcher


def _host_lines(known_hosts: Path, host: str, port: int) -> list[str]:
    name = host if port == 22 else f"[{host}]:{port}"
    try:
        text = known_hosts.read_text(encoding="ascii")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.split(" ", 1)[0] == name]


class Parking:
    """One session's parking: offered each instance still live when the pool closes, it parks the sound ones.

    Also a pytest plugin (registered by ``safety.arming``): it learns of an interrupt, after which nothing is parked.
    """

    def __init__(
        self,
        *,
        minutes: float,
        ledger: LedgerFile,
        session_id: str,
        api_url: str,
        provisioner: Provisioner,
        renewer: Renewer | None,
        watchdog: WatchdogWatcher | None,
        warnings: list[str],
    ) -> None:
        self.minutes = minutes
        self.ledger = ledger
        self.state_dir = ledger.path.parent
        self.session_id = session_id
        self.api_url = api_url.rstrip("/")
        self.provisioner = provisioner
        self.renewer = renewer
        self.watchdog = watchdog
        self.warnings = warnings  # the session guard's: shown as DUMONT WARNING lines in the summary
        self.interrupted = False
        self.ending = False
        self.parked: list[InstanceRecord] = []

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True  # Ctrl-C, SIGTERM or SIGHUP: the session's instances are destroyed, never parked

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
                    self._unpark(record.label)
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

    def _unpark(self, label: str) -> None:
        """Back to ``live`` for the pool to destroy; an entry a `dumont release` claimed meanwhile is its own."""

        def change(entries: list[LedgerEntry]) -> None:
            for entry in entries:
                if entry.label == label and entry.state == "parked":
                    entry.state = "live"
                    entry.note = "parking undone"
                    entry.parking = None
                    entry.updated = time.time()

        self.ledger.update(change)

    def _warn(self, message: str) -> None:
        message = redact(message)
        if message not in self.warnings:
            self.warnings.append(message)
