"""The end-of-run table: per-phase timings with bars and percentages, the status timeline, and the cost."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.reporting.phases import PHASE_LABELS, PhaseRow, rows_of, total_row, usd

__all__ = ["PHASE_LABELS", "bar", "phase_table", "render_entry", "render_instance", "usd", "write_session"]

if TYPE_CHECKING:
    from pytest_dumont.reporting.run import ReportingRun
    from pytest_dumont.session.state import SessionState

BAR_WIDTH = 36


def bar(seconds: float, total: float) -> str:
    if total <= 0:
        return ""
    eighths = round(seconds / total * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "") or "▏"


def phase_table(rows: Sequence[PhaseRow]) -> list[str]:
    """The rows, a nested one indented under its parent with its share of it; then the total (top level only)."""
    labels = ["  " * r.depth + r.label for r in rows]
    width = max([len(label) for label in labels] + [5])
    lines = [f"  {'phase':<{width}}  {'seconds':>9}  {'%':>6}  {'cost':>11}"]
    for label, row in zip(labels, rows, strict=True):
        mark = "" if row.outcome == "passed" else f"  ({row.outcome})"
        money = usd(row.cost) if row.cost is not None else ""
        lines.append(
            f"  {label:<{width}}  {row.seconds:9.2f}  {row.share:5.1f}%  {money:>11}  {bar(row.share, 100.0)}{mark}"
        )
    seconds, cost = total_row(rows)
    lines.append(f"  {'total':<{width}}  {seconds:9.2f}  100.0%  {usd(cost) if cost is not None else '':>11}")
    return lines


def render_entry(entry: Mapping[str, Any]) -> list[str]:
    """One instance's block from its report entry: phases, status timeline, cost, whether it was destroyed."""
    offer, cost = entry["offer"], entry["cost"]
    where = f", {offer['geolocation']}" if offer.get("geolocation") else ""
    bid = f" (interruptible, bid ${cost['bid']:.4f}/h)" if cost.get("bid") is not None else ""
    lines = [
        f"instance {entry['instance_id']}  {offer['num_gpus']}x {offer['gpu_name']}  ${cost['dph_total']:.4f}/h"
        f"{bid}{where}  offer {offer['id']}  label {entry['label']}",
    ]
    lines += phase_table(rows_of(entry))
    if entry["timeline"]:
        lines.append("  status: " + " -> ".join(f"{c['status']} {c['at']:.1f}s" for c in entry["timeline"]))
    lines.append(
        f"  cost: {usd(cost['billed_usd'])} billed estimate (GPU ${cost['dph_base']:.4f}/h x "
        f"{cost['running_seconds']:.1f} s running + storage ${cost['storage_dph']:.4f}/h x "
        f"{cost['exists_seconds']:.1f} s existing); {usd(cost['simple_usd'])} simple "
        f"(dph_total x {cost['wall_seconds']:.1f} s wall)"
    )
    if cost.get("parked_before_usd") or cost.get("parked_before_seconds"):
        lines.append(
            f"  parked before this session: {usd(cost.get('parked_before_usd') or 0.0)} (dph_total x "
            f"{cost.get('parked_before_seconds') or 0.0:.1f} s parked, in the cost above and the budget)"
        )
    if entry.get("failure"):
        lines.append(f"  failed: {entry['failure']}")
    if entry.get("parked_until") and not entry["destroyed"]:
        until = time.strftime("%H:%M", time.localtime(entry["parked_until"]))
        release = f"dumont release {entry['instance_id']}"
        lines.append(f"  destroyed: no - PARKED until {until} for the next session ({release})")
    else:
        lines.append(
            "  destroyed: " + ("yes (confirmed)" if entry["destroyed"] else "NO - still live, check the console")
        )
    return lines


def render_instance(record: InstanceRecord, now: float) -> list[str]:
    """An in-memory record's block (as its report entry shows it)."""
    from pytest_dumont.reporting.document import instance_entry

    return render_entry(instance_entry(record, now))


def write_summary(
    write_line: Callable[[str], None], section: Callable[..., None], entries: Sequence[Mapping[str, Any]], mode: str
) -> None:
    """Write the pytest-dumont section of the terminal summary (nothing when no instance was made)."""
    if not entries:
        return
    live = [e for e in entries if not e["destroyed"] and not e.get("parked_until")]  # parked: not a leak
    billed = sum(e["cost"]["billed_usd"] for e in entries)
    title = f"pytest-dumont ({mode}): {len(entries)} instance(s), {usd(billed)} billed estimate"
    section("=", title, red=bool(live), green=not live)
    for entry in entries:
        for line in render_entry(entry):
            write_line(line)
    if live:
        write_line(
            "LEAK: instance(s) " + ", ".join(str(e["instance_id"]) for e in live) + " are not confirmed destroyed"
        )
    elif any(e.get("parked_until") for e in entries):
        write_line("all instances destroyed or parked")
    else:
        write_line("all instances destroyed")


def write_session(
    write_line: Callable[..., None], section: Callable[..., None], state: SessionState, run: ReportingRun | None
) -> None:
    """The section for this process's instances and those the xdist workers sent, then where reports went."""
    from pytest_dumont.reporting.document import instance_entry

    if run is not None and run.doc is not None:
        entries = run.doc["instances"]  # built once at the session's end, the workers' instances included
    else:
        now = state.clock.now()
        entries = [instance_entry(r, now) for r in state.ledger.records()]
        entries += run.worker_instances if run is not None else []
    write_summary(write_line, section, entries, state.settings.mode)
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
