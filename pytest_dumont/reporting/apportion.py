"""Who pays for a shared instance: each test by the time it held it, the rest is provisioning overhead."""

from __future__ import annotations

import itertools

from pytest_dumont.provisioning.records import InstanceRecord

Span = tuple[float, float]


def _one_after_another(spans: list[Span]) -> bool:
    """True in the usual case: each hold ends before the next one starts (one test at a time per process)."""
    return all(ended <= started for (_, ended), (started, _) in itertools.pairwise(spans))


def _split_overlaps(record: InstanceRecord, spans: list[Span], now: float) -> list[float]:
    """A sweep over the holds' start and end times: a stretch held by k tests is split k ways. O(n log n)."""
    events = sorted([(a, 1, i) for i, (a, _) in enumerate(spans)] + [(b, 0, i) for i, (_, b) in enumerate(spans)])
    cost = [0.0] * len(spans)
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
    return cost


def hold_costs(record: InstanceRecord, now: float) -> tuple[list[Span], list[float]]:
    """Each hold's (start, end) (an open hold ends now) and its part of the instance's billed estimate."""
    end = record.end(now)
    spans = [(h.started, h.ended if h.ended is not None else end) for h in record.holds]
    if _one_after_another(spans):  # nothing to split: each hold pays for its own stretch
        return spans, [record.interval_cost(a, b, now) for a, b in spans]
    return spans, _split_overlaps(record, spans, now)
