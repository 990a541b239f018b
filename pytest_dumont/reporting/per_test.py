"""A GPU test's own numbers, computed when its call ends: they ride on ``report.user_properties`` (xdist-safe)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_dumont.ledger import Hold, InstanceRecord
from pytest_dumont.reporting import PROPERTY
from pytest_dumont.reporting.run import get_run
from pytest_dumont.session import get_state


def _hold(record: InstanceRecord, nodeid: str) -> Hold | None:
    return next((h for h in reversed(record.holds) if h.nodeid == nodeid), None)


def data_for_test(record: InstanceRecord, hold: Hold, now: float) -> dict[str, Any]:
    """GPU, $/h, provisioning seconds, cost, and the phases the test saw (provisioning too, if it waited for it)."""
    end = hold.ended if hold.ended is not None else now
    # The test that asked before the search started is the one that paid the provisioning wait.
    provisioned = hold.started - hold.waited <= record.search_started_at
    phases = [
        p
        for p in record.phases
        if (hold.started <= p.started <= end and p.kind != "provision")
        or (provisioned and p.kind == "provision" and p.started <= hold.started)
    ]
    return {
        "nodeid": hold.nodeid,
        "instance_id": record.instance_id,
        "gpu_name": record.offer.gpu_name,
        "dph_total": record.dph_total,
        "provision_seconds": hold.waited,
        "held_seconds": end - hold.started,
        "cost_usd": record.interval_cost(hold.started, end, now),
        "phases": [
            {
                "name": p.name,
                "kind": p.kind,
                "duration": p.duration,
                "outcome": p.outcome,
                "cost_usd": record.interval_cost(p.started, p.started + p.duration, now),
            }
            for p in phases
        ],
        "timeline": [{"at": c.at, "status": c.status} for c in record.timeline] if provisioned else [],
        # The instance's GPU facts once, on the test that provisioned it; the summary has them for every instance.
        "facts": dict(record.facts) if provisioned else {},
    }


def on_call_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Close the test's hold, put its numbers on the report, add the pytest-html extra, fire the users' hooks."""
    instance = item.funcargs.get("vast_gpu")  # type: ignore[attr-defined]
    record = getattr(instance, "record", None)
    if not isinstance(record, InstanceRecord):
        return
    hold = _hold(record, item.nodeid)
    if hold is None:
        return
    state = get_state(item.config)
    now = state.clock.now()
    hold.close(now)
    data = data_for_test(record, hold, now)
    item.user_properties.append((PROPERTY, data))
    report.user_properties = list(item.user_properties)
    # A test that only held the instance has its numbers in the row's cells; an extra is for phases and timelines.
    if getattr(item.config.option, "htmlpath", None) and (data["phases"] or data["timeline"]):
        from pytest_html import extras  # type: ignore[import-untyped]

        from pytest_dumont.reporting.html import extra_for_test

        report.extras = [*getattr(report, "extras", []), extras.html(extra_for_test(data))]  # type: ignore[attr-defined]
    run = get_run(item.config)
    run.outcomes[item.nodeid] = report.outcome
    run.hooks.catch_up(state.ledger.records(), now)
