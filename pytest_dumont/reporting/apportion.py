"""Who pays for a shared instance: each test by the time it held it, the rest is provisioning overhead."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_dumont.ledger import InstanceRecord


@dataclass(frozen=True)
class HoldShare:
    """One test's part of one instance's billed estimate."""

    nodeid: str
    instance_id: int
    held_seconds: float
    waited_seconds: float
    cost: float


def hold_shares(record: InstanceRecord, now: float) -> list[HoldShare]:
    """Split the instance's cost over its holds; time two tests held at once is split evenly between them."""
    spans = [(h, h.started, h.ended if h.ended is not None else record.end(now)) for h in record.holds]
    # A sweep over the holds' start and end times: O(n log n) for the usual one-test-after-another case.
    events = sorted([(a, 1, i) for i, (_, a, _) in enumerate(spans)] + [(b, 0, i) for i, (_, _, b) in enumerate(spans)])
    cost: dict[int, float] = dict.fromkeys(range(len(spans)), 0.0)
    active: set[int] = set()
    last: float | None = None
    for at, starts, i in events:
        if active and last is not None and at > last:
            piece = record.interval_cost(last, at, now) / len(active)
            for j in active:
                cost[j] += piece
        last = at
        if starts:
            active.add(i)
        else:
            active.discard(i)
    return [
        HoldShare(hold.nodeid, record.instance_id, max(0.0, stop - start), hold.waited, cost[i])
        for i, (hold, start, stop) in enumerate(spans)
    ]


def overhead_cost(record: InstanceRecord, now: float) -> float:
    """The part no test held: search to hand-over, gaps between tests, and destroy."""
    return max(0.0, record.billed_cost(now) - sum(s.cost for s in hold_shares(record, now)))
