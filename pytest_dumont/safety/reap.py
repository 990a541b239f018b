"""``reap``: destroy what dead sessions left behind, found through the ledger file or by label."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pytest_dumont.clock import SystemClock
from pytest_dumont.errors import DumontError, InstanceNotFound, TeardownError
from pytest_dumont.provisioning.provisioner import Deadlines, confirm_gone
from pytest_dumont.safety.ledger_file import LedgerEntry, LedgerFile
from pytest_dumont.safety.parked import CLAIM_STATES, ParkedInfo, claimed_by, remove_key_dir


def destroy_confirmed(client: Any, instance_id: int, *, deadline_s: float = 60.0) -> str | None:
    """Destroy ``instance_id`` and poll until the API no longer lists it; None on success, else why not."""
    try:
        client.destroy_instance(instance_id)
    except InstanceNotFound:
        pass
    except DumontError as exc:
        return f"destroy failed: {exc.message}"
    try:
        confirm_gone(client, instance_id, clock=SystemClock(), within=deadline_s, backoff=Deadlines().polling)
    except TeardownError as exc:
        return exc.cause
    return None


@dataclass
class ReapReport:
    """What ``reap`` found and did."""

    destroyed: list[tuple[int, str]] = field(default_factory=list)  # (id, label)
    would_destroy: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (id, reason)
    skipped: list[str] = field(default_factory=list)  # why some entries were left alone

    @property
    def ok(self) -> bool:
        return not self.failed


def reap(
    client: Any,
    *,
    ledger: LedgerFile | None,
    label_prefix: str | None = None,
    older_than_s: float | None = None,
    dry_run: bool = False,
    include_kept: bool = False,
    confirm_deadline_s: float = 60.0,
) -> ReapReport:
    """Destroy what the ledger lists as live for this API and, with ``label_prefix``, what carries such a label.

    Entries whose pytest process is still running on this machine are left alone (that session will tear them
    down), as are kept instances unless ``include_kept``. ``older_than_s`` spares anything younger.
    """
    report = ReapReport()
    now = time.time()
    targets: dict[int, str] = {}
    by_label: dict[str, LedgerEntry] = {}
    protected: set[int] = set()
    parked_out: list[LedgerEntry] = []
    if ledger is not None:
        for entry in ledger.live():
            if entry.api_url.rstrip("/") != client.base_url.rstrip("/"):
                continue
            spared = _spared_parked(entry, now)
            if spared is not None:
                report.skipped.append(f"{entry.label}: {spared} (`dumont release {entry.instance_id}` destroys it)")
                if entry.instance_id is not None:
                    protected.add(entry.instance_id)
                continue
            if entry.parking:
                parked_out.append(entry)  # expired, or claimed by a process now gone: its keys go once it is gone
            if entry.state != "parked" and entry.owner_running():
                held = claimed_by(entry) if entry.state in CLAIM_STATES else None
                report.skipped.append(f"{entry.label}: {held or f'its session (pid {entry.pid}) is still running'}")
                if entry.instance_id is not None:
                    protected.add(entry.instance_id)
                continue
            if entry.state == "kept" and not include_kept:
                report.skipped.append(f"{entry.label}: kept for debugging (reap it with --include-kept)")
                if entry.instance_id is not None:
                    protected.add(entry.instance_id)
                continue
            if older_than_s is not None and now - entry.created < older_than_s:
                continue
            if entry.instance_id is not None:
                targets[entry.instance_id] = entry.label
            else:
                by_label[entry.label] = entry
    if label_prefix is not None or by_label:
        for instance in client.list_instances():
            label = instance.label or ""
            if instance.id in protected:
                continue
            if label in by_label:
                targets[instance.id] = label
            elif label_prefix is not None and label.startswith(label_prefix):
                started = instance.start_date
                if older_than_s is None or started is None or now - started >= older_than_s:
                    targets[instance.id] = label
    for instance_id, label in sorted(targets.items()):
        if dry_run:
            report.would_destroy.append((instance_id, label))
            continue
        reason = destroy_confirmed(client, instance_id, deadline_s=confirm_deadline_s)
        if reason is None:
            report.destroyed.append((instance_id, label))
        else:
            report.failed.append((instance_id, reason))
        if ledger is not None:
            state = "destroyed" if reason is None else "teardown_failed"
            ledger.settle(label, instance_id, state, "reaped" if reason is None else reason)
            if reason is None:
                for entry in parked_out:
                    if entry.instance_id == instance_id:
                        remove_key_dir(entry, ledger.path.parent)
    if ledger is not None and not dry_run:
        # Entries whose create never rented anything: nothing carries their label any more.
        ledger.update(lambda entries: _forget_unrented(entries, set(by_label) - set(targets.values())))
    return report


def _spared_parked(entry: LedgerEntry, now: float) -> str | None:
    """Why reaping leaves a parked entry alone (not yet expired, or unreadable), or None when it takes it."""
    if entry.state != "parked":
        return None
    try:
        expires = ParkedInfo.from_entry(entry).expires
    except ValueError as exc:
        return f"parked, but its parking data is unreadable ({exc}): left alone, its dead-man switch still fires"
    if expires > now:
        return f"parked until {time.strftime('%H:%M', time.localtime(expires))}"
    return None


def _forget_unrented(entries: list[LedgerEntry], labels: set[str]) -> None:
    for entry in entries:
        if entry.instance_id is None and entry.label in labels and entry.state == "creating":
            entry.state = "destroyed"
            entry.note = "the create rented nothing"
            entry.updated = time.time()
