"""The end-of-run table: per-phase timings with bars and percentages, the status timeline, and the cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_dumont.provisioning.records import PROVISIONING_PHASES, InstanceRecord, Ledger

if TYPE_CHECKING:
    from pytest_dumont.reporting.run import ReportingRun
    from pytest_dumont.session.state import SessionState

BAR_WIDTH = 36


def usd(amount: float) -> str:
    """Dollars with enough digits to be non-zero: short test runs cost fractions of a cent."""
    return f"${amount:.4f}" if amount >= 0.01 or amount == 0 else f"${amount:.6f}"


PHASE_LABELS = {
    "search": "search offers",
    "create": "create instance",
    "wait_running": "wait for running",
    "wait_ssh": "wait for SSH",
    "destroy": "destroy instance",
    "adopt": "adopt parked instance",
}


def phase_rows(record: InstanceRecord) -> list[tuple[str, float, str]]:
    """(label, seconds, outcome) in order: provisioning, the tests' own phases, time in use otherwise, destroy."""
    rows = [
        (PHASE_LABELS[name], record.phase_seconds(name), "passed")
        for name in PROVISIONING_PHASES
        if any(p.name == name for p in record.phases)
    ]
    users = [p for p in record.phases if p.kind in ("user", "remote")]  # remote: --dumont-remote's sync and setup
    rows += [(p.name, p.duration, p.outcome) for p in users]
    if record.ready_at is not None:
        destroy_started = next((p.started for p in record.phases if p.name == "destroy"), None)
        in_use = (destroy_started if destroy_started is not None else record.ready_at) - record.ready_at
        other = in_use - sum(p.duration for p in users)
        if other > 0.0005:
            rows.append(("tests (other)", other, "passed"))
    if any(p.name == "destroy" for p in record.phases):
        rows.append((PHASE_LABELS["destroy"], record.phase_seconds("destroy"), "passed"))
    return rows


def bar(seconds: float, total: float) -> str:
    if total <= 0:
        return ""
    eighths = round(seconds / total * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "") or "▏"


def render_instance(record: InstanceRecord, now: float) -> list[str]:
    offer = record.offer
    where = f", {offer.geolocation}" if offer.geolocation else ""
    lines = [
        f"instance {record.instance_id}  {offer.num_gpus}x {offer.gpu_name}  ${record.dph_total:.4f}/h"
        f"{where}  offer {offer.id}  label {record.label}",
    ]
    rows = phase_rows(record)
    total = sum(seconds for _, seconds, _ in rows)
    width = max([len(label) for label, _, _ in rows] + [5])
    lines.append(f"  {'phase':<{width}}  {'seconds':>9}  {'%':>6}")
    for label, seconds, outcome in rows:
        share = seconds / total * 100 if total else 0.0
        mark = "" if outcome == "passed" else f"  ({outcome})"
        lines.append(f"  {label:<{width}}  {seconds:9.2f}  {share:5.1f}%  {bar(seconds, total)}{mark}")
    lines.append(f"  {'total':<{width}}  {total:9.2f}  100.0%")
    if record.timeline:
        lines.append("  status: " + " -> ".join(f"{c.status} {c.at:.1f}s" for c in record.timeline))
    lines.append(
        f"  cost: {usd(record.billed_cost(now))} billed estimate (GPU ${record.dph_base:.4f}/h x "
        f"{record.running_seconds(now):.1f} s running + storage ${record.storage_dph:.4f}/h x "
        f"{record.exists_seconds(now):.1f} s existing); {usd(record.simple_cost(now))} simple "
        f"(dph_total x {record.wall_seconds(now):.1f} s wall)"
    )
    if record.parked_before_usd or record.parked_before_s:
        lines.append(
            f"  parked before this session: {usd(record.parked_before_usd)} (dph_total x "
            f"{record.parked_before_s:.1f} s parked, in the cost above and the budget)"
        )
    if record.failure:
        lines.append(f"  failed: {record.failure}")
    if record.parked_at is not None and record.destroyed_at is None:
        until = time.strftime("%H:%M", time.localtime(record.parked_until)) if record.parked_until else "?"
        release = f"dumont release {record.instance_id}"
        lines.append(f"  destroyed: no - PARKED until {until} for the next session ({release})")
    else:
        lines.append("  destroyed: " + ("yes (confirmed)" if not record.live else "NO - still live, check the console"))
    return lines


def write_summary(
    write_line: Callable[[str], None], section: Callable[..., None], ledger: Ledger, now: float, mode: str
) -> None:
    """Write the pytest-dumont section of the terminal summary (nothing when no instance was made)."""
    records = ledger.records()
    if not records:
        return
    live = [r for r in records if r.live]
    title = f"pytest-dumont ({mode}): {len(records)} instance(s), {usd(ledger.billed_cost(now))} billed estimate"
    section("=", title, red=bool(live), green=not live)
    for record in records:
        for line in render_instance(record, now):
            write_line(line)
    if live:
        write_line("LEAK: instance(s) " + ", ".join(str(r.instance_id) for r in live) + " are not confirmed destroyed")
    elif any(r.parked_at is not None and r.destroyed_at is None for r in records):
        write_line("all instances destroyed or parked")
    else:
        write_line("all instances destroyed")


def write_session(
    write_line: Callable[..., None], section: Callable[..., None], state: SessionState, run: ReportingRun | None
) -> None:
    """The section for this process's instances and those the xdist workers sent, then where reports went."""
    from pytest_dumont.reporting.document import record_from_entry

    ledger = Ledger()
    for record in state.ledger.records():
        ledger.add(record)
    for entry in run.worker_instances if run is not None else []:
        ledger.add(record_from_entry(entry))
    write_summary(write_line, section, ledger, state.clock.now(), state.settings.mode)
    if run is None:
        return
    if run.doc is not None and run.doc["instances"]:
        t = run.doc["totals"]
        write_line(
            f"cost by test: {usd(t['tests_usd'])} held by {t['tests']} test(s), {usd(t['overhead_usd'])} "
            "provisioning overhead (search to hand-over, gaps, destroy)"
            + (f", {usd(t['parked_before_usd'])} parked before this session" if t.get("parked_before_usd") else "")
        )
    for worker in run.crashed_workers:
        write_line(
            f"xdist worker {worker} crashed: its instances are missing from the totals: check the Vast.ai console",
            red=True,
        )
    for error in run.hooks.errors:
        write_line(f"HOOK ERROR (ignored, the run went on): {error}", yellow=True)
    for message in run.messages:
        write_line(message)
