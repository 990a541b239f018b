"""A reported test's own numbers and figures, taken when its call ends: they ride on the report (xdist sends it
whole): ``user_properties``, and for pytest-html its row's cells and its extras.

This runs once per test, so it does only what that test's row and extra need: the session's totals and its
document are built once, at the end.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.reporting import CELLS, FIGURES_PROPERTY, PROPERTY
from pytest_dumont.reporting.document import phase_entries
from pytest_dumont.reporting.html import extra_for_test, figures_extra, row_cells
from pytest_dumont.reporting.run import ReportingRun, get_run


def _hold(record: InstanceRecord, nodeid: str) -> Hold | None:
    """The test's latest hold: the last one, unless the test held the instance more than once."""
    for hold in reversed(record.holds):
        if hold.nodeid == nodeid:
            return hold
    return None


def _test_phases(record: InstanceRecord, hold: Hold, provisioned: bool) -> list[PhaseTiming]:
    """The phases the test ran (its node id on them), and the provisioning phases if it was the first to hold it."""
    nodeid = hold.nodeid
    if provisioned:  # once per instance: the whole list, for its provisioning phases
        return [
            p
            for p in record.phases
            if p.test == nodeid or (p.kind == "provision" and p.test is None and p.started <= hold.started)
        ]
    # Phases are appended as they end: scanning from the newest, the first that ended before the test began ends
    # the search, so a test costs the phases of its own hold, not every phase of the session so far.
    mine = []
    for phase in reversed(record.phases):
        if phase.started + phase.duration < hold.started:
            break
        if phase.test == nodeid:
            mine.append(phase)
    mine.reverse()
    return mine


def data_for_test(record: InstanceRecord, hold: Hold, now: float) -> dict[str, Any]:
    """GPU, $/h, provisioning seconds, cost, and the phases the test saw (provisioning and the status timeline too,
    if it was the first test to hold the instance: with prewarming it did not start the boot, but waited for it)."""
    end = hold.ended if hold.ended is not None else now
    provisioned = bool(record.holds) and record.holds[0] is hold
    phases = _test_phases(record, hold, provisioned)
    return {
        "nodeid": hold.nodeid,
        "instance_id": record.instance_id,
        "gpu_name": record.offer.gpu_name,
        "dph_total": record.dph_total,
        "provision_seconds": hold.waited,
        "held_seconds": end - hold.started,
        "cost_usd": record.interval_cost(hold.started, end, now),
        "phases": phase_entries(record, phases, now) if phases else [],
        "timeline": [{"at": c.at, "status": c.status} for c in record.timeline] if provisioned else [],
        # The instance's GPU facts once, on the test that provisioned it; the summary has them for every instance.
        "facts": dict(record.facts) if provisioned else {},
    }


def _figure(name: object, value: object, unit: object) -> dict[str, Any]:
    """One figure as the JSON report holds it; a value that is not a finite number is ``null`` (JSON has no NaN)."""
    try:
        number: float | None = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is not None and not math.isfinite(number):
        number = None
    return {"name": str(name), "value": number, "unit": str(unit)}


def recorded_figures(user_properties: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The (name, value, unit) figures a test recorded with the ``scenario_figures`` fixture, in their order."""
    return [
        _figure(*figure)
        for key, figures in user_properties
        if key == FIGURES_PROPERTY
        for figure in figures or ()
        if isinstance(figure, (tuple, list)) and len(figure) == 3  # anything else is not the fixture's: skipped
    ]


def _numbers(record: object, nodeid: str, now: float) -> dict[str, Any] | None:
    """Close the test's hold on ``record`` (at its call's end, or when the instance's billing ended if the test
    destroyed it) and return the test's numbers on it."""
    if not isinstance(record, InstanceRecord):
        return None
    hold = _hold(record, nodeid)
    if hold is None:
        return None
    end = record.end(now)
    hold.close(end if end < now else now)
    return data_for_test(record, hold, now)


def _held(item: pytest.Item, names: list[str], nodeid: str, now: float) -> list[dict[str, Any]]:
    """The test's numbers on each instance it held: ``vast_gpu``'s, then those it rented with the factory."""
    held = []
    funcargs = item.funcargs  # type: ignore[attr-defined]
    if "vast_gpu" in names:
        data = _numbers(getattr(funcargs.get("vast_gpu"), "record", None), nodeid, now)
        if data is not None:
            held.append(data)
    if "dumont_instance_factory" in names:
        for ready in getattr(funcargs.get("dumont_instance_factory"), "instances", ()):
            data = _numbers(ready.record, nodeid, now)
            if data is not None:
                held.append(data)
    return held


def combined(held: list[dict[str, Any]]) -> dict[str, Any]:
    """One row's numbers for a test that held several instances (factory rentals): their GPUs, and the sums of
    their $/h, of the seconds it waited for them and of what its holds cost."""
    return {
        "gpu_name": " + ".join(str(data["gpu_name"]) for data in held),
        "dph_total": sum(data["dph_total"] for data in held),
        "provision_seconds": sum(data["provision_seconds"] for data in held),
        "cost_usd": sum(data["cost_usd"] for data in held),
    }


def _add_extras(report: pytest.TestReport, parts: list[str]) -> None:
    from pytest_html import extras  # type: ignore[import-untyped]

    report.extras = [*getattr(report, "extras", []), *(extras.html(p) for p in parts)]  # type: ignore[attr-defined]


def on_call_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Note the outcome, the GPU numbers and the scenario figures; add the pytest-html extras; fire users' hooks."""
    run: ReportingRun = get_run(item.config)
    nodeid = item.nodeid
    run.outcomes[nodeid] = report.outcome
    state = run.state
    now = state.clock.now()
    names = item.fixturenames  # type: ignore[attr-defined]
    extras = []
    held = _held(item, names, nodeid, now)
    for data in held:
        item.user_properties.append((PROPERTY, data))  # the teardown report carries it too: junit XML reads it
        report.user_properties.append((PROPERTY, data))
        # A test that only held an instance has its numbers in its row; an extra is for phases and timelines.
        if run.html and (data["phases"] or data["timeline"]):
            extras.append(extra_for_test(data))
    if held and run.html:
        setattr(report, CELLS, row_cells(held[0] if len(held) == 1 else combined(held)))
    if "scenario_figures" in names:
        figures = recorded_figures(item.user_properties)
        if figures:
            run.figures[nodeid] = figures
            if run.html:
                extras.append(figures_extra(figures))
    if extras:
        _add_extras(report, extras)
    if run.hooks.listening:
        run.hooks.catch_up(state.ledger.records(), now)
