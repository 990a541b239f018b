"""The run's report as one JSON-able document (schema in docs/reporting.md): every renderer and ``merge`` reads it.

Times inside an instance are seconds on the clock of the process that ran it; only differences within one instance
are meaningful, so documents from several jobs merge by concatenation.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import resources
from operator import itemgetter
from typing import Any

from pytest_dumont import __version__
from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.reporting.apportion import hold_costs
from pytest_dumont.vast.models import Offer, StatusChange

SCHEMA = "pytest-dumont-report"
SCHEMA_VERSION = 1
Doc = dict[str, Any]


def reference_prices() -> Doc:
    """The other clouds' prices and the seed's operations, from the data file that names its source and date."""
    text = resources.files("pytest_dumont").joinpath("data/cloud_prices.json").read_text(encoding="utf-8")
    data: Doc = json.loads(text)
    return data


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


def instance_entry(record: InstanceRecord, now: float) -> Doc:
    """One instance: its times, phases (each with its cost), timeline, holds, and the costs derived from them."""
    spans, costs = hold_costs(record, now)
    return {
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
            "reported_at": now,
        },
        "timeline": [{"at": c.at, "status": c.status, "status_msg": c.status_msg} for c in record.timeline],
        "phases": [
            {
                "name": p.name,
                "kind": p.kind,
                "started": p.started,
                "duration": p.duration,
                "outcome": p.outcome,
                "cost_usd": record.interval_cost(p.started, p.started + p.duration, now),
            }
            for p in record.phases
        ],
        "holds": [
            {"nodeid": h.nodeid, "started": h.started, "ended": h.ended, "waited": h.waited} for h in record.holds
        ],
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
        failure=entry.get("failure"),
        facts=dict(entry.get("facts") or {}),
        parked_at=times.get("parked_at"),
        parked_until=entry.get("parked_until"),
        parked_before_s=float(entry["cost"].get("parked_before_seconds") or 0.0),
        parked_before_usd=float(entry["cost"].get("parked_before_usd") or 0.0),
    )
    record.timeline = [StatusChange(c["at"], c["status"], c.get("status_msg")) for c in entry["timeline"]]
    record.phases = [
        PhaseTiming(p["name"], p["started"], p["duration"], p["outcome"], record.instance_id, p["kind"])
        for p in entry["phases"]
    ]
    record.holds = [Hold(h["nodeid"], h["started"], h["ended"], h["waited"]) for h in entry["holds"]]
    record.tests = [h.nodeid for h in record.holds]
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


def projections(dph_total: float, wall_seconds: float, prices: Mapping[str, Any]) -> Doc:
    """What this run's price means for longer work, and what the same wall time costs on other clouds."""
    return {
        "dph_total": dph_total,
        "operations": [
            {"name": op["name"], "seconds": op["seconds"], "cost_usd": dph_total * op["seconds"] / 3600.0}
            for op in prices["operations"]
        ],
        "comparison": [
            {
                **cloud,
                "cost_usd": cloud["usd_per_hour"] * wall_seconds / 3600.0,
                "times_vast": cloud["usd_per_hour"] / dph_total if dph_total else None,
            }
            for cloud in prices["clouds"]
        ],
        "prices_source": prices["source"],
        "prices_date": prices["date"],
    }


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
    summed = totals(instances, tests)
    weighted = max(instances, key=lambda e: e["cost"]["wall_seconds"], default=None)
    dph = weighted["cost"]["dph_total"] if weighted else 0.0
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generator": f"pytest-dumont {__version__}",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sessions": [dict(session)],
        "instances": instances,
        "tests": tests,
        "scenario_figures": figure_entries(figures or {}, outcomes),
        "totals": summed,
        "projections": projections(dph, summed["wall_seconds"], reference_prices()),
        "hook_errors": list(hook_errors),
    }
