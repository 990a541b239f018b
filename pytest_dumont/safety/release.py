"""``release``: destroy parked instances now, rather than at their deadline (``dumont release``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_dumont.safety.ledger_file import LedgerFile
from pytest_dumont.safety.parked import remove_key_dir
from pytest_dumont.safety.reap import destroy_confirmed


@dataclass
class ReleaseReport:
    """What ``release`` destroyed, could not destroy, and which ids it did not know."""

    destroyed: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unknown


def release(client: Any, ledger: LedgerFile, ids: list[int] | None) -> ReleaseReport:
    """Destroy parked instances of this API: those of ``ids``, or every one when ``ids`` is None."""
    report = ReleaseReport()
    parked = {
        e.instance_id: e
        for e in ledger.entries()
        if e.state == "parked" and e.instance_id is not None and e.api_url.rstrip("/") == client.base_url.rstrip("/")
    }
    wanted = sorted(parked) if ids is None else ids
    for instance_id in wanted:
        entry = parked.get(instance_id)
        if entry is None:
            report.unknown.append(instance_id)
            continue
        reason = destroy_confirmed(client, instance_id)
        if reason is None:
            report.destroyed.append(instance_id)
            ledger.settle(entry.label, instance_id, "destroyed", "released (dumont release)")
            remove_key_dir(entry, ledger.path.parent)
        else:
            report.failed.append((instance_id, reason))
    return report
