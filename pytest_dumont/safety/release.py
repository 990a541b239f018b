"""``release``: destroy parked instances now, rather than at their deadline (``dumont release``).

It claims the entries first, as a session adopting one does (``safety.parked``: ``releasing`` under the ledger file's
lock), and destroys only what it claimed: an instance a session is adopting is that session's, and is named instead.
A release killed after its claim leaves a ``releasing`` entry of a dead pid, which ``reap`` destroys.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile, process_alive
from pytest_dumont.safety.parked import CLAIM_STATES, claim, claimed_by, remove_key_dir, same_api, settle_claim
from pytest_dumont.safety.reap import destroy_confirmed


@dataclass
class ReleaseReport:
    """What ``release`` destroyed, could not destroy, found claimed by another process, and did not know."""

    destroyed: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (id, reason)
    busy: list[tuple[int, str]] = field(default_factory=list)  # (id, who is acting on it)
    unknown: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unknown


def release(client: Any, ledger: LedgerFile, ids: list[int] | None) -> ReleaseReport:
    """Destroy parked instances of this API: those of ``ids``, or every one when ``ids`` is None."""
    report = ReleaseReport()
    for entry in _claim(ledger, client.base_url, ids, report):
        assert entry.instance_id is not None
        reason = destroy_confirmed(client, entry.instance_id)
        if reason is None:
            report.destroyed.append(entry.instance_id)
            settle_claim(ledger, entry.label, state="destroyed", note="released (dumont release)")
            remove_key_dir(entry, ledger.path.parent)
        else:  # it may still run: parked again, its switch still fires, and another release can try
            report.failed.append((entry.instance_id, reason))
            settle_claim(ledger, entry.label, state="parked", note=f"parked (a release failed: {reason})")
    return report


def _claim(ledger: LedgerFile, api_url: str, ids: list[int] | None, report: ReleaseReport) -> list[LedgerEntry]:
    """Under the ledger file's lock: claim the parked entries asked for, noting the others in ``report``."""
    claimed: list[LedgerEntry] = []
    note = f"being released (dumont release, pid {os.getpid()})"

    def change(entries: list[LedgerEntry]) -> None:
        parked: dict[int, LedgerEntry] = {}
        held: dict[int, LedgerEntry] = {}  # claimed by a session adopting it, or by another release
        for entry in entries:
            if entry.instance_id is not None and same_api(entry, api_url):
                if entry.state == "parked":
                    parked[entry.instance_id] = entry
                elif entry.state in CLAIM_STATES:
                    held[entry.instance_id] = entry
        for instance_id in sorted(parked) if ids is None else ids:
            if instance_id in parked:
                claim(parked[instance_id], "releasing", note)
                claimed.append(parked[instance_id])
            elif instance_id in held:
                report.busy.append((instance_id, _who(held[instance_id])))
            else:
                report.unknown.append(instance_id)
        if ids is None:
            report.busy.extend((i, _who(e)) for i, e in sorted(held.items()))

    ledger.update(change)
    return claimed


def _who(entry: LedgerEntry) -> str:
    """Who is acting on a claimed entry; a claimer that is gone left it to ``dumont reap``."""
    if entry.host != socket.gethostname() or process_alive(entry.pid):
        return claimed_by(entry)
    return f"{claimed_by(entry)}, a process that is gone: `dumont reap` destroys it"
