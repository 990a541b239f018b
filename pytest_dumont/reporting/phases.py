"""The phase rows every renderer shows, nested, and the numbers' formats.

A test's own phase (``dumont_phase``) holds the commands and phases run inside it: they are its children, not rows
beside it, so no second is counted twice. At each level a row's share is of its parent (the top level: of the
table's total), and what the children leave of their parent is a row of its own, so a level adds up to 100%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pytest_dumont.provisioning.records import PROVISIONING_PHASES, InstanceRecord

__all__ = ["PhaseRow", "figure_value", "indent_of", "instance_rows", "nest", "record_rows", "rows_of", "usd"]

PHASE_LABELS = {
    "search": "search offers",
    "create": "create instance",
    "wait_running": "wait for running",
    "wait_ssh": "wait for SSH",
    "adopt": "adopt parked instance",  # --dumont-reuse
    "destroy": "destroy instance",
}
SHOWN = 0.05  # percent: a remainder under this share of its parent would print as 0.0%: not a row
Phase = Mapping[str, Any]


class PhaseRow(NamedTuple):
    """One row of a phase table: ``share`` is the percentage of its parent (of the total at depth 0)."""

    label: str
    seconds: float
    outcome: str
    kind: str  # provision | command | user | other
    depth: int
    share: float
    cost: float | None


def significant(value: float, digits: int = 3) -> str:
    """``value`` in fixed notation with ``digits`` significant digits (0.0000465, 0.00465, 12.3), never 1e-05."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def usd(amount: float) -> str:
    """Dollars a person can read: cents with four decimals, less than a cent with three significant digits
    ($0.0000465): a test that held an instance for a second costs millionths of a dollar, never "$0.000000"."""
    if amount >= 0.01 or amount <= -0.01:
        return f"${amount:.4f}"
    if -5e-10 < amount < 5e-10:  # under half a billionth of a dollar
        return "$0"
    if amount != amount:
        return "$nan"
    # As ``significant`` does, without its checks: every GPU test's cost cell is written with this.
    decimals = 2 - math.floor(math.log10(abs(amount)))
    return f"${amount:.{decimals}f}"


def figure_value(value: float | None) -> str:
    """A scenario figure: 3 decimals, or 3 significant digits for a small one (a cost of $0.0000465 is not 0.000)."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else significant(value)


def indent_of(name: str) -> int:
    """A figure named with leading spaces is a part of the one above it (``"  restore"`` under ``"failover"``)."""
    return (len(name) - len(name.lstrip(" "))) // 2


# --- nesting --------------------------------------------------------------------------------------------------------


class Node(NamedTuple):
    phase: Phase
    children: list[Node]


def _contains(outer: Phase, inner: Phase) -> bool:
    start: float = outer["started"]
    end: float = start + outer["duration"] + 1e-9
    inner_start: float = inner["started"]
    return start <= inner_start and inner_start + inner["duration"] <= end


def nest(phases: Iterable[Phase]) -> list[Node]:
    """The phases as a forest, in the order they started: within one test, a phase at depth d+1 goes under the
    innermost phase at depth d that holds it in time; anything else (provisioning, an orphan) is a root."""
    ordered = sorted(phases, key=lambda p: (p.get("test") or "", p["started"], p.get("depth", 0)))
    roots: list[Node] = []
    stack: list[tuple[int, Node]] = []
    test: object = object()
    for phase in ordered:
        depth = phase.get("depth", 0)
        if phase.get("test") != test:
            test, stack = phase.get("test"), []
        while stack and (stack[-1][0] >= depth or not _contains(stack[-1][1].phase, phase)):
            stack.pop()
        node = Node(phase, [])
        (stack[-1][1].children if stack else roots).append(node)
        stack.append((depth, node))
    roots.sort(key=lambda n: n.phase["started"])
    return roots


def parents(phases: Sequence[Phase]) -> list[int | None]:
    """For each phase, the index of the phase it is nested under (``nest``'s rule), or None."""
    index = {id(p): i for i, p in enumerate(phases)}
    found: list[int | None] = [None] * len(phases)

    def walk(node: Node) -> None:
        for child in node.children:
            found[index[id(child.phase)]] = index[id(node.phase)]
            walk(child)

    for root in nest(phases):
        walk(root)
    return found


def _cost(phase: Phase) -> float | None:
    cost = phase.get("cost_usd")
    return float(cost) if cost is not None else None


def _rows(
    nodes: Sequence[Node], whole: float, whole_cost: float | None, depth: int, other: str, of: float | None = None
) -> list[PhaseRow]:
    """``nodes`` as rows under a parent of ``whole`` seconds, with a row for what they leave of it; their shares are
    of ``of`` when given (the top of a table: its total), else of ``whole``."""
    rows: list[PhaseRow] = []
    whole_of = whole if of is None else of
    for node in nodes:
        p = node.phase
        seconds = float(p["duration"])
        rows.append(PhaseRow(p["name"], seconds, p["outcome"], p["kind"], depth, _share(seconds, whole_of), _cost(p)))
        if node.children:
            rows += _rows(node.children, seconds, _cost(p), depth + 1, "(other)")
    rest = whole - sum(float(n.phase["duration"]) for n in nodes)
    if nodes and _share(rest, whole_of) >= SHOWN:
        spent = [_cost(n.phase) for n in nodes]
        rest_cost = None if whole_cost is None or None in spent else whole_cost - sum(c or 0.0 for c in spent)
        rows.append(PhaseRow(other, rest, "passed", "other", depth, _share(rest, whole_of), rest_cost))
    return rows


def _share(seconds: float, whole: float) -> float:
    return seconds / whole * 100.0 if whole > 0 else 0.0


def rows_for_test(phases: Sequence[Phase], held_seconds: float, held_cost: float | None) -> list[PhaseRow]:
    """A test's table: the provisioning it waited for (if it was the first to hold the instance), then its own
    phases nested, then the rest of the time it held the instance. The total is provisioning + held, once."""
    provision = [p for p in phases if p["kind"] == "provision"]
    own = nest(p for p in phases if p["kind"] != "provision")
    provision_seconds = sum(float(p["duration"]) for p in provision)
    total = provision_seconds + held_seconds
    rows = [
        PhaseRow(str(PHASE_LABELS.get(p["name"], p["name"])), float(p["duration"]), p["outcome"], "provision", 0,
                 _share(float(p["duration"]), total), _cost(p))
        for p in provision
    ]  # fmt: skip
    rows += _rows(own, held_seconds, held_cost, 0, "(in the test, outside its phases)", of=total)
    if not own and _share(held_seconds, total) >= SHOWN:  # a test without phases of its own: its held time
        rows.append(
            PhaseRow("(in the test)", held_seconds, "passed", "other", 0, _share(held_seconds, total), held_cost)
        )
    return rows


def instance_rows(
    entry: Mapping[str, Any], interval_cost: Callable[[float, float], float] | None = None
) -> list[PhaseRow]:
    """An instance's table: provisioning, the tests' own phases nested (commands are in each test's table), the
    rest of the time in use, destroy. Each with its cost; the top level adds up to the table's total.

    Made once per instance, with its entry (``document.instance_entry``, which passes the record's own
    ``interval_cost``); the renderers read it with ``rows_of``.
    """
    phases = entry["phases"]
    times = entry["times"]
    named = {name: [p for p in phases if p["name"] == name and p["kind"] == "provision"] for name in PHASE_LABELS}
    top: list[tuple[str, float, str, str, float | None]] = []
    for name in PROVISIONING_PHASES:
        if named[name]:
            top.append(_merged(PHASE_LABELS[name], named[name]))
    users = nest(p for p in phases if p["kind"] in ("user", "remote"))  # remote: --dumont-remote's sync and setup
    ready = times.get("ready_at")
    in_use: tuple[float, float] | None = None
    if ready is not None:
        destroy_started = min((p["started"] for p in named["destroy"]), default=None)
        end = destroy_started if destroy_started is not None else times.get("destroyed_at") or times["reported_at"]
        in_use = (ready, max(ready, end))
    destroy = _merged(PHASE_LABELS["destroy"], named["destroy"]) if named["destroy"] else None
    use_seconds = in_use[1] - in_use[0] if in_use else 0.0
    user_seconds = sum(float(n.phase["duration"]) for n in users)
    other = max(0.0, use_seconds - user_seconds)
    total = sum(t[1] for t in top) + user_seconds + other + (destroy[1] if destroy else 0.0)
    rows = [PhaseRow(label, s, outcome, kind, 0, _share(s, total), cost) for label, s, outcome, kind, cost in top]
    for node in users:
        seconds = float(node.phase["duration"])
        p = node.phase
        rows.append(PhaseRow(p["name"], seconds, p["outcome"], "user", 0, _share(seconds, total), _cost(p)))
        if node.children:
            rows += _rows(node.children, seconds, _cost(p), 1, "(other)")
    if _share(other, total) >= SHOWN:
        use_cost = None
        if in_use:
            use_cost = interval_cost(*in_use) if interval_cost is not None else _interval_cost(entry, in_use)
        spent = sum(_cost(n.phase) or 0.0 for n in users)
        cost = None if use_cost is None else max(0.0, use_cost - spent)
        rows.append(PhaseRow("tests (other)", other, "passed", "other", 0, _share(other, total), cost))
    if destroy is not None:
        label, s, outcome, kind, cost = destroy
        rows.append(PhaseRow(label, s, outcome, kind, 0, _share(s, total), cost))
    return rows


def _merged(label: str, phases: Sequence[Phase]) -> tuple[str, float, str, str, float | None]:
    """Phases of one name (a fallback offer searched twice) as one row: seconds and costs summed."""
    costs = [_cost(p) for p in phases]
    outcome = "passed" if all(p["outcome"] == "passed" for p in phases) else "failed"
    cost = None if None in costs else sum(c or 0.0 for c in costs)
    return label, sum(float(p["duration"]) for p in phases), outcome, "provision", cost


def _interval_cost(entry: Mapping[str, Any], span: tuple[float, float]) -> float:
    from pytest_dumont.reporting.document import record_from_entry

    record = record_from_entry({**entry, "holds": [], "phases": []})
    return record.interval_cost(span[0], span[1], entry["times"]["reported_at"])


def row_entries(rows: Sequence[PhaseRow]) -> list[dict[str, Any]]:
    """The rows as the JSON report holds them (an instance's ``rows``)."""
    return [
        {"label": r.label, "seconds": r.seconds, "share": r.share, "cost_usd": r.cost, "kind": r.kind,
         "depth": r.depth, "outcome": r.outcome}
        for r in rows
    ]  # fmt: skip


def rows_of(entry: Mapping[str, Any]) -> list[PhaseRow]:
    """An instance's table as its entry holds it: every renderer shows these rows, none works them out again."""
    return [
        PhaseRow(r["label"], r["seconds"], r["outcome"], r["kind"], r["depth"], r["share"], r["cost_usd"])
        for r in entry["rows"]
    ]


def record_rows(record: InstanceRecord, now: float) -> list[PhaseRow]:
    """An in-memory record's table, as its report entry holds it."""
    from pytest_dumont.reporting.document import instance_entry

    return rows_of(instance_entry(record, now))


def total_row(rows: Sequence[PhaseRow]) -> tuple[float, float | None]:
    """The table's total: its top level's seconds and cost (deeper rows are parts of those)."""
    top = [r for r in rows if r.depth == 0]
    costs = [r.cost for r in top]
    return sum(r.seconds for r in top), None if None in costs or not top else sum(c or 0.0 for c in costs)
