"""The billing ledger as Vast's billing endpoints show it: charges per instance, invoices (credits) per account.

Shapes follow what CLI 1.9.1's ``show invoices-v1`` reads (``results`` of items with ``type``, ``source``, ``amount``,
``start``, ``end``, ``description``, ``metadata`` and nested ``items``) and the legacy ``show invoices`` rows
(``description``, ``quantity``, ``rate``, ``amount``, ``timestamp``, ``type``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ApiError

MAX_PAGE = 100


def window(query: Mapping[str, str], column: str) -> tuple[float, float]:
    """``select_filters={"<column>": {"gte": t0, "lte": t1}}`` -> (t0, t1); either bound may be missing."""
    try:
        filters = json.loads(query.get("select_filters") or "{}")
    except json.JSONDecodeError:
        raise ApiError(400, "invalid_request", "select_filters must be JSON") from None
    bounds = filters.get(column, {}) if isinstance(filters, dict) else {}
    if not isinstance(bounds, dict):
        raise ApiError(400, "invalid_request", f"select_filters.{column} must be an object")
    try:
        return float(bounds.get("gte", 0)), float(bounds.get("lte", float("inf")))
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_request", f"select_filters.{column} bounds must be timestamps") from None


def _item(kind: str, source: str | None, amount: float, start: float, end: float, description: str) -> dict[str, Any]:
    return {
        "type": kind,
        "source": source,
        "amount": round(amount, 6),
        "start": int(start),
        "end": int(end),
        "description": description,
        "metadata": {},
        "items": [],
    }


def instance_charges(history: Sequence[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """One charge per instance ever created (``source`` ``instance-<id>``), its GPU and disk parts as ``items``."""
    charges = []
    for entry in history:
        cost = entry["charges"]
        start = float(entry["created_at"])
        end = float(entry["destroyed_at"] if entry["destroyed_at"] is not None else now)
        parent = _item("instance", f"instance-{entry['id']}", cost["cost"], start, end, f"{entry['gpu_name']} instance")
        parent["metadata"] = {"instance_id": entry["id"], "label": entry["label"]}
        gpu_hours, disk_hours = cost["gpu_seconds"] / 3600, cost["storage_seconds"] / 3600
        parent["items"] = [
            _item("gpu", None, cost["gpu_cost"], start, end, f"{gpu_hours:.4f} h GPU at ${cost['dph_base']:.4f}/h"),
            _item(
                "disk", None, cost["storage_cost"], start, end,
                f"{disk_hours:.4f} h storage at ${cost['storage_total_cost']:.6f}/h",
            ),
        ]  # fmt: skip
        charges.append(parent)
    return charges


def page(items: list[dict[str, Any]], query: Mapping[str, str], t0: float, t1: float) -> dict[str, Any]:
    """Filter to the window, order (``latest_first``), cut a page (``limit`` <= 100, ``after_token``)."""
    chosen = [i for i in items if i["end"] >= t0 and i["start"] <= t1]
    chosen.sort(key=lambda i: i["start"], reverse=query.get("latest_first", "false").lower() == "true")
    try:
        limit = max(1, min(int(query.get("limit") or 20), MAX_PAGE))
        offset = int(query.get("after_token") or 0)
    except ValueError:
        raise ApiError(400, "invalid_request", "limit and after_token must be integers") from None
    results = chosen[offset : offset + limit]
    more = offset + limit < len(chosen)
    return {
        "success": True,
        "count": len(results),
        "total": len(chosen),
        "next_token": str(offset + limit) if more else None,
        "results": results,
    }


def initial_credit(amount: float, when: float) -> dict[str, Any]:
    """The emulator's one invoice: the starting credit (amounts of credits are negative, as the CLI flips them)."""
    credit = _item("credit", "emulator", -amount, when, when, "Starting credit of the emulated account")
    credit["metadata"] = {"invoice_id": 1}
    return credit


def legacy_invoices(
    charges: Sequence[Mapping[str, Any]], credit: float, when: float, t0: float, t1: float, inc_charges: bool
) -> dict[str, Any]:
    """``GET /users/me/invoices``: rows of charges and payments, and the ``current`` running total."""
    rows: list[dict[str, Any]] = []
    if t0 <= when <= t1:
        rows.append({"type": "payment", "description": "Starting credit", "quantity": 1, "rate": credit,
                     "amount": credit, "timestamp": when, "id": 1})  # fmt: skip
    if inc_charges:
        for charge in charges:
            if charge["end"] >= t0 and charge["start"] <= t1:
                instance_id = charge["metadata"]["instance_id"]
                rows.append({"type": "charge", "description": f"Instance {instance_id}: {charge['description']}",
                             "quantity": 1, "rate": charge["amount"], "amount": charge["amount"],
                             "timestamp": float(charge["end"]), "instance_id": instance_id})  # fmt: skip
    total = round(sum(float(c["amount"]) for c in charges), 6)
    return {"invoices": rows, "current": {"charges": total}}
