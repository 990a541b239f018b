"""The run's report as one JSON-able document (schema in docs/reporting.md): every renderer and ``merge`` reads it.

Times inside an instance are seconds on the clock of the process that ran it; only differences within one instance
are meaningful, so documents from several jobs merge by concatenation.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from pytest_dumont import __version__
from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.reporting.apportion import hold_costs
from pytest_dumont.reporting.phases import instance_rows, parents, row_entries
from pytest_dumont.vast.models import Offer, StatusChange

SCHEMA = "pytest-dumont-report"
SCHEMA_VERSION = 1
Doc = dict[str, Any]


MONTH_DAYS = 30
COSTLIEST_PROJECTED = 3  # the projections name the few tests that cost the most


def reference_prices(path: str | None = None) -> Doc:
    """Other clouds' prices: the package's list (each price with its page, region and date), or a team's file."""
    from pytest_dumont.data.prices import load

    return load(path)


def _offer(offer: Offer) -> Doc:
    return {
        "id": offer.id,
        "gpu_name": offer.gpu_name,
        "num_gpus": offer.num_gpus,
        "gpu_ram": offer.gpu_ram_mb,
        "dph_base": offer.dph_base,
        "dph_total": offer.dph_total,
        "storage_cost": offer.storage_cost,
        "geolocation": offer.geolocation,
        "reliability": offer.reliability,
        "disk_space": offer.disk_space,
        "verified": offer.verified,
        "driver_version": offer.driver_version,
        "inet_up_cost": offer.inet_up_cost,
        "inet_down_cost": offer.inet_down_cost,
    }


def phase_entries(record: InstanceRecord, phases: list[PhaseTiming], now: float) -> list[Doc]:
    """Each phase with its cost, its test, its depth and ``parent``: the index (in this list) of the phase it is
    nested under (a command in a ``dumont_phase``), or null."""
    entries: list[Doc] = [
        {
            "name": p.name,
            "kind": p.kind,
            "started": p.started,
            "duration": p.duration,
            "outcome": p.outcome,
            "cost_usd": record.interval_cost(p.started, p.started + p.duration, now),
            "test": p.test,
            "depth": p.depth,
        }
        for p in phases
    ]
    if any(p.depth for p in phases):  # nothing is nested otherwise: spare a long run the sort
        for entry, parent in zip(entries, parents(entries), strict=True):
            entry["parent"] = parent
    else:
        for entry in entries:
            entry["parent"] = None
    return entries


def instance_entry(record: InstanceRecord, now: float) -> Doc:
    """One instance: its times, phases (each with its cost), timeline, holds, and the costs derived from them."""
    spans, costs = hold_costs(record, now)
    entry: Doc = {
        "instance_id": record.instance_id,
        "label": record.label,
        "offer": _offer(record.offer),
        "disk_gb": record.disk_gb,
        "times": {
            "search_started_at": record.search_started_at,
            "created_at": record.created_at,
            "running_at": record.running_at,
            "ready_at": record.ready_at,
            "destroyed_at": record.destroyed_at,
            "parked_at": record.parked_at,
            "billing_ended_at": record.billing_ended_at,
            "reported_at": now,
        },
        "timeline": [{"at": c.at, "status": c.status, "status_msg": c.status_msg} for c in record.timeline],
        "gpu_spans": [[a, b] for a, b in record.running_spans(now)],
        "phases": phase_entries(record, record.phases, now),
        "holds": [h.as_dict() for h in record.holds],
        "facts": dict(record.facts),
        "failure": record.failure,
        "destroyed": record.destroyed_at is not None or (record.parked_at is None and not record.live),
        "parked_until": record.parked_until if record.parked_at is not None else None,  # epoch s (--dumont-reuse)
        "cost": {
            "billed_usd": record.billed_cost(now),
            "gpu_usd": record.gpu_cost(now),
            "storage_usd": record.storage_cost(now),
            "bandwidth_usd": None,  # not known to the client: Vast reports traffic only on the invoice
            "simple_usd": record.simple_cost(now),
            "dph_base": record.dph_base,
            "bid": record.bid,  # interruptible: what dph_base is (None: on-demand, the offer's)
            "storage_dph": record.storage_dph,
            "dph_total": record.dph_total,
            "running_seconds": record.running_seconds(now),
            "exists_seconds": record.exists_seconds(now),
            "wall_seconds": record.wall_seconds(now),
            "provisioning_seconds": record.provisioning_seconds(),
            "overhead_usd": max(0.0, record.billed_cost(now) - record.parked_before_usd - sum(costs)),
            "parked_before_usd": record.parked_before_usd,  # adopted: its time parked before this session
            "parked_before_seconds": record.parked_before_s,
        },
        "tests": [
            {"nodeid": h.nodeid, "held_seconds": max(0.0, b - a), "waited_seconds": h.waited, "cost_usd": cost}
            for h, (a, b), cost in zip(record.holds, spans, costs, strict=True)
        ],
    }
    # The phase table every renderer shows, made here once: terminal, HTML, Markdown and JSON read these rows.
    entry["rows"] = row_entries(instance_rows(entry, lambda start, stop: record.interval_cost(start, stop, now)))
    return entry


def record_from_entry(entry: Mapping[str, Any]) -> InstanceRecord:
    """An ``InstanceRecord`` back from its entry, so the terminal table renders a worker's or another job's data."""
    times = entry["times"]
    record = InstanceRecord(
        instance_id=int(entry["instance_id"]),
        label=str(entry["label"]),
        offer=Offer.from_api(entry["offer"]),
        disk_gb=float(entry["disk_gb"]),
        search_started_at=float(times["search_started_at"]),
        created_at=float(times["created_at"]),
        running_at=times["running_at"],
        ready_at=times["ready_at"],
        destroyed_at=times["destroyed_at"],
        billing_ended_at=times.get("billing_ended_at"),
        failure=entry.get("failure"),
        facts=dict(entry.get("facts") or {}),
        parked_at=times.get("parked_at"),
        parked_until=entry.get("parked_until"),
        parked_before_s=float(entry["cost"].get("parked_before_seconds") or 0.0),
        parked_before_usd=float(entry["cost"].get("parked_before_usd") or 0.0),
        bid=entry["cost"].get("bid"),
    )
    record.timeline = [StatusChange(c["at"], c["status"], c.get("status_msg")) for c in entry["timeline"]]
    # gpu_spans and the phases' test and depth came within version 1: an older report has none.
    record.gpu_spans = [[a, b] for a, b in entry.get("gpu_spans") or []]
    record.phases = [
        PhaseTiming(
            p["name"], p["started"], p["duration"], p["outcome"], record.instance_id, p["kind"],
            test=p.get("test"), depth=p.get("depth", 0),
        )
        for p in entry["phases"]
    ]  # fmt: skip
    record.holds = [Hold.from_dict(h) for h in entry["holds"]]
    return record


def totals(instances: Iterable[Mapping[str, Any]], tests: Iterable[Mapping[str, Any]]) -> Doc:
    """Session (or merged) totals from instance entries."""
    entries = list(instances)
    costs = [e["cost"] for e in entries]
    return {
        "instances": len(entries),
        "billed_usd": sum(c["billed_usd"] for c in costs),
        "gpu_usd": sum(c["gpu_usd"] for c in costs),
        "storage_usd": sum(c["storage_usd"] for c in costs),
        "simple_usd": sum(c["simple_usd"] for c in costs),
        "tests_usd": sum(t["cost_usd"] for e in entries for t in e["tests"]),
        "overhead_usd": sum(c["overhead_usd"] for c in costs),
        "parked_before_usd": sum(c.get("parked_before_usd", 0.0) for c in costs),  # --dumont-reuse: adopted idle
        "wall_seconds": sum(c["wall_seconds"] for c in costs),
        "provisioning_seconds": sum(c["provisioning_seconds"] for c in costs),
        "leaked": [e["instance_id"] for e in entries if not e["destroyed"] and not e.get("parked_until")],
        "tests": len(list(tests)),
    }


def projections(doc: Mapping[str, Any], prices: Mapping[str, Any], runs_per_day: float) -> Doc:
    """What this run's cost means at ``runs_per_day`` runs (a day, a 30-day month), which tests cost the most, what
    the provisioning overhead costs, and what the same wall time costs at other clouds' reference prices. The scenario
    library's operations table (snapshot, failover, model test) only for a run that recorded scenario figures."""
    t = doc["totals"]
    per_run = t["billed_usd"]
    instances = doc["instances"]
    longest = max(instances, key=lambda e: e["cost"]["wall_seconds"], default=None)
    dph = longest["cost"]["dph_total"] if longest else 0.0
    ranked = heapq.nlargest(COSTLIEST_PROJECTED, doc["tests"], key=itemgetter("cost_usd"))
    month = runs_per_day * MONTH_DAYS
    operations = []
    if doc.get("scenario_figures"):
        from pytest_dumont.data.prices import scenario_operations

        operations = [
            {"name": op["name"], "seconds": op["seconds"], "cost_usd": dph * op["seconds"] / 3600.0}
            for op in scenario_operations()
        ]
    return {
        "runs_per_day": runs_per_day,
        "per_run_usd": per_run,
        "per_day_usd": per_run * runs_per_day,
        "per_month_usd": per_run * month,
        "overhead_usd": t["overhead_usd"],
        "overhead_share": t["overhead_usd"] / per_run if per_run > 0 else 0.0,
        "overhead_per_month_usd": t["overhead_usd"] * month,
        "costliest": [
            {"nodeid": x["nodeid"], "cost_usd": x["cost_usd"], "share": x["cost_usd"] / per_run if per_run > 0 else 0.0}
            for x in ranked
        ],
        "dph_total": dph,
        "operations": operations,
        "comparison": [
            {
                **price,
                "cost_usd": price["usd_per_hour"] * t["wall_seconds"] / 3600.0,
                "times_vast": price["usd_per_hour"] / dph if dph else None,
            }
            for price in prices["prices"]
        ],
        "prices_source": prices["source"],
        "prices_date": max((price["date"] for price in prices["prices"]), default=None),
    }


def prices_of(doc: Mapping[str, Any]) -> Doc:
    """The reference prices a report was made with (to merge reports with them), or the package's for an older one."""
    p = doc.get("projections") or {}
    comparison = p.get("comparison") or []
    if comparison and all("source" in c and "region" in c for c in comparison):
        keys = ("provider", "instance_type", "gpu", "usd_per_hour", "region", "date", "source", "note")
        return {"source": p.get("prices_source"), "prices": [{k: c.get(k) for k in keys} for c in comparison]}
    return reference_prices()


def figure_entries(figures: Mapping[str, list[Doc]], outcomes: Mapping[str, str]) -> list[Doc]:
    """Each test that recorded scenario figures, with its outcome and its figures in the order it recorded them."""
    return [
        {"nodeid": nodeid, "outcome": outcomes.get(nodeid, "unknown"), "figures": list(values)}
        for nodeid, values in figures.items()
    ]


COSTLIEST_SHOWN = 20  # the summaries list the costliest tests; the JSON report and the sortable column have all


def costliest_tests(doc: Mapping[str, Any], limit: int = COSTLIEST_SHOWN) -> tuple[list[Doc], int, float]:
    """The ``limit`` costliest tests, most expensive first, then how many others there are and their cost together.

    A summary is read by a person: 500 rows of fractions of a cent bury the few that matter.
    """
    ranked = heapq.nlargest(limit, doc["tests"], key=itemgetter("cost_usd"))
    rest = len(doc["tests"]) - len(ranked)
    if not rest:
        return ranked, 0, 0.0
    return ranked, rest, max(0.0, sum(t["cost_usd"] for t in doc["tests"]) - sum(t["cost_usd"] for t in ranked))


def build(
    instances: list[Doc],
    outcomes: Mapping[str, str],
    *,
    session: Mapping[str, Any],
    hook_errors: Iterable[str] = (),
    figures: Mapping[str, list[Doc]] | None = None,
    prices: Mapping[str, Any] | None = None,
    runs_per_day: float = 10.0,
) -> Doc:
    """The whole document: instances, tests (with their outcome), scenario figures, totals, projections and the
    prices' source."""
    tests = []
    for entry in instances:
        gpu = entry["offer"]["gpu_name"]
        for share in entry["tests"]:
            tests.append(
                {
                    **share,
                    "instance_id": entry["instance_id"],
                    "gpu_name": gpu,
                    "dph_total": entry["cost"]["dph_total"],
                    "outcome": outcomes.get(share["nodeid"], "unknown"),
                }
            )
    doc: Doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generator": f"pytest-dumont {__version__}",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sessions": [dict(session)],
        "instances": instances,
        "tests": tests,
        "scenario_figures": figure_entries(figures or {}, outcomes),
        "totals": totals(instances, tests),
    }
    doc["projections"] = projections(doc, prices if prices is not None else reference_prices(), runs_per_day)
    return {
        **doc,
        "hook_errors": list(hook_errors),
    }
