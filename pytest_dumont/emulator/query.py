"""Server-side query semantics: the offer search (v0 bundles) and the paged instance list (v1 instances).

The official CLI sends numbers as strings (``{"num_gpus": {"eq": "1"}}``), underscores instead of spaces only if
the caller did (it rewrites every ``_`` to a space itself), and the integer form of driver versions. The server
coerces, so this module compares after coercing to the type the offer or row actually holds.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .market import driver_number

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
MAX_OFFERS = 64  # one search never returns more, whatever "limit" says
DEFAULT_ALLOCATED_STORAGE = 5.0  # GB, the CLI's --storage default
# The docs' enum says "ondemand", their examples and the CLI "on-demand"; the CLI maps interruptible to bid.
OFFER_TYPES = {
    "on-demand": "on-demand",
    "ondemand": "on-demand",
    "bid": "bid",
    "interruptible": "bid",
    "reserved": "reserved",
}
_CONTROL_KEYS = frozenset({"order", "type", "limit", "allocated_storage", "select_cols", "q"})

# v1 list: only stored columns can be filtered; computed ones (dph_total, num_gpus...) are a 400.
STORED_COLUMNS = frozenset(
    {
        "id",
        "actual_status",
        "intended_status",
        "cur_state",
        "next_state",
        "label",
        "gpu_name",
        "verification",
        "machine_id",
        "host_id",
        "bundle_id",
        "image_uuid",
        "image_runtype",
        "start_date",
        "end_date",
        "geolocation",
        "disk_space",
        "is_bid",
        "status_msg",
        "template_id",
        "template_hash_id",
    }
)
V1_MAX_LIMIT = 25
V1_DEFAULT_LIMIT = 25
V1_NONPOSITIVE_LIMIT = 5


class QueryError(ValueError):
    """A query the API refuses with 400; ``error`` is the API's error code."""

    def __init__(self, msg: str, error: str = "invalid_args") -> None:
        super().__init__(msg)
        self.error = error
        self.msg = msg


# ---------------------------------------------------------------------------------------------------------------
# Coercion and comparison
# ---------------------------------------------------------------------------------------------------------------


def _to_number(value: Any, field: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise QueryError(f"Invalid args: {field} expects a number, got {value!r}")


def _to_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise QueryError(f"Invalid args: {field} expects a boolean, got {value!r}")


def _to_text(value: Any) -> str:
    # RTX_4090 and RTX 4090 both match: the CLI turns every underscore into a space, other clients may not.
    return str(value).replace("_", " ").strip()


def _coerce(field: str, actual: Any, wanted: Any) -> tuple[Any, Any]:
    """``(actual, wanted)`` converted to one comparable type, chosen by the stored value's type."""
    if wanted is None or actual is None:
        return actual, wanted
    if isinstance(actual, bool):
        return actual, _to_bool(wanted, field)
    if isinstance(actual, (int, float)):
        return float(actual), _to_number(wanted, field)
    if field == "driver_version" and _is_integer_like(wanted):
        # The CLI sends driver_version as the integer 535086005 for "535.86.05".
        return driver_number(str(actual)), int(_to_number(wanted, field))
    return _to_text(actual), _to_text(wanted)


def _is_integer_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit())


def _compare(field: str, op: str, actual: Any, wanted: Any) -> bool:
    if op in ("in", "notin"):
        if not isinstance(wanted, (list, tuple)):
            raise QueryError(f"Invalid args: {field} {op} expects a list, got {wanted!r}")
        found = any(_compare(field, "eq", actual, item) for item in wanted)
        return found if op == "in" else not found
    if field == "geolocation" and op in ("eq", "neq") and isinstance(wanted, str) and isinstance(actual, str):
        # "geolocation in [US,CA]" matches "Texas, US": the country code is what clients filter on.
        hit = _to_text(wanted) in (actual, actual.rsplit(",", 1)[-1].strip())
        return hit if op == "eq" else not hit
    left, right = _coerce(field, actual, wanted)
    if op == "eq":
        return bool(left == right)
    if op == "neq":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        raise QueryError(f"Invalid args: cannot compare {field} {op} {wanted!r}") from None


def _normalise_filter(field: str, condition: Any) -> dict[str, Any]:
    if not isinstance(condition, Mapping):
        return {"eq": condition}  # a bare value means equality
    for op in condition:
        if op not in OPERATORS:
            raise QueryError(f"Invalid args: unknown operator {op!r} for {field}; use one of {', '.join(OPERATORS)}")
    return dict(condition)


def matches(row: Mapping[str, Any], filters: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether ``row`` satisfies every ``{field: {op: value}}`` filter."""
    return all(
        _compare(field, op, row.get(field), wanted)
        for field, condition in filters.items()
        for op, wanted in condition.items()
    )


def _sort(rows: list[dict[str, Any]], keys: Sequence[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Stable multi-key sort; ``None`` sorts last whichever the direction."""
    for field, descending in reversed(keys):
        present = [r for r in rows if r.get(field) is not None]
        missing = [r for r in rows if r.get(field) is None]
        try:
            present.sort(key=lambda r: _sort_key(r[field]), reverse=descending)
        except TypeError:
            present.sort(key=lambda r: str(r[field]), reverse=descending)
        rows = present + missing
    return rows


def _sort_key(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) else value


# ---------------------------------------------------------------------------------------------------------------
# Offers
# ---------------------------------------------------------------------------------------------------------------


def storage_hourly(disk_gb: float, storage_cost: float) -> float:
    """$/h of storage: ``disk_GB x storage_cost / 720`` (a 30-day month), as in vast-api.md section 9."""
    return disk_gb * storage_cost / 720.0


def price_breakdown(gpu_hourly: float, disk_hourly: float) -> dict[str, float]:
    """The ``search``/``instance`` objects of offers and rows."""
    total = gpu_hourly + disk_hourly
    return {
        "gpuCostPerHour": gpu_hourly,
        "diskHour": disk_hourly,
        "totalHour": total,
        "discountTotalHour": 0.0,
        "discountedTotalPerHour": total,
    }


def priced_offer(offer: Mapping[str, Any], allocated_storage: float, offer_type: str = "on-demand") -> dict[str, Any]:
    """A copy of ``offer`` with the storage-dependent prices filled in for ``allocated_storage`` GB."""
    priced = dict(offer)
    gpu_hourly = float(offer["min_bid"] if offer_type == "bid" else offer["dph_base"])
    disk_hourly = storage_hourly(allocated_storage, float(offer["storage_cost"]))
    total = gpu_hourly + disk_hourly
    priced["storage_total_cost"] = disk_hourly
    priced["dph_total"] = total
    priced["dlperf_per_dphtotal"] = round(float(offer["dlperf"]) / total, 3) if total else 0.0
    priced["flops_per_dphtotal"] = round(float(offer["total_flops"]) / total, 3) if total else 0.0
    priced["discount_rate"] = 0.0
    priced["discounted_dph_total"] = total
    priced["search"] = price_breakdown(gpu_hourly, disk_hourly)
    priced["instance"] = price_breakdown(gpu_hourly, disk_hourly)
    priced["time_remaining"] = None
    return priced


def _parse_order(order: Any) -> list[tuple[str, bool]]:
    if order is None:
        return [("score", True)]
    if not isinstance(order, list):
        raise QueryError(f"Invalid args: order must be a list of [field, direction], got {order!r}")
    keys: list[tuple[str, bool]] = []
    for item in order:
        if isinstance(item, str):
            keys.append((item.strip("+-"), item.startswith("-") or item.endswith("-")))
            continue
        if not isinstance(item, (list, tuple)) or not item or not isinstance(item[0], str):
            raise QueryError(f"Invalid args: bad order entry {item!r}")
        direction = str(item[1]).lower() if len(item) > 1 else "asc"
        if direction not in ("asc", "desc"):
            raise QueryError(f"Invalid args: order direction must be asc or desc, got {item[1]!r}")
        keys.append((item[0], direction == "desc"))
    return keys


def search_offers(offers: Iterable[Mapping[str, Any]], query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The offers a ``POST /bundles/`` query selects, priced, ordered and capped at 64."""
    if not isinstance(query, Mapping):
        raise QueryError("Invalid args: the query must be a JSON object")
    storage = query.get("allocated_storage")
    allocated = DEFAULT_ALLOCATED_STORAGE if storage is None else _to_number(storage, "allocated_storage")
    if allocated < 0:
        raise QueryError("Invalid args: allocated_storage must be >= 0")
    raw_type = query.get("type") or "on-demand"
    offer_type = OFFER_TYPES.get(str(raw_type))
    if offer_type is None:
        raise QueryError(f"Invalid args: type must be one of {', '.join(OFFER_TYPES)}, got {raw_type!r}")
    limit = MAX_OFFERS
    if query.get("limit") is not None:
        wanted = int(_to_number(query["limit"], "limit"))
        if wanted > 0:
            limit = min(wanted, MAX_OFFERS)
    keys = _parse_order(query.get("order"))
    priced = [priced_offer(o, allocated, offer_type) for o in offers]
    known = set().union(*(p.keys() for p in priced)) | set(VIRTUAL_FIELDS) if priced else set()
    # Unknown fields are ignored, as the API evidently does (gpuhunt, dstack's catalog, filters on a field no offer
    # has, compute_capability, and gets offers); a known field with a value of the wrong type is a 400.
    filters = {
        field: _normalise_filter(field, condition)
        for field, condition in query.items()
        if field not in _CONTROL_KEYS and field in known
    }
    selected = [p for p in priced if matches(_with_virtual_fields(p), filters)]
    return _sort(selected, keys)[:limit]


# Filterable on Vast but not in the offer rows: derived from stored fields (the SDK derives datacenter the same way).
VIRTUAL_FIELDS = ("datacenter",)


def _with_virtual_fields(offer: dict[str, Any]) -> dict[str, Any]:
    return {**offer, "datacenter": offer.get("hosting_type") == 1}


# ---------------------------------------------------------------------------------------------------------------
# Instances (v1 list)
# ---------------------------------------------------------------------------------------------------------------


def _json_param(params: Mapping[str, str], name: str, default: Any) -> Any:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # A bare value like limit=25 is fine; anything else must be JSON.
        if name in ("limit", "after_token"):
            return text
        raise QueryError(f"Error in query parameters: {name} is not valid JSON", "invalid_request") from None


def _bad_param(msg: str) -> QueryError:
    return QueryError(f"Error in query parameters: {msg}", "invalid_request")


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_token(token: Any) -> int:
    try:
        text = str(token)
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        offset = data["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise QueryError("Invalid pagination token", "invalid_token")


def _v1_limit(value: Any) -> int:
    if value is None:
        return V1_DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise _bad_param(f"limit must be an integer, got {value!r}") from None
    if limit <= 0:
        return V1_NONPOSITIVE_LIMIT
    return min(limit, V1_MAX_LIMIT)


def _v1_filters(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        raise QueryError("Error in query parameters: select_filters must be an object", "invalid_request")
    filters: dict[str, dict[str, Any]] = {}
    for field, condition in raw.items():
        if field not in STORED_COLUMNS:
            raise QueryError(f"Error in query parameters: {field} is not a valid search key", "invalid_request")
        try:
            filters[field] = _normalise_filter(field, condition)
        except QueryError as exc:
            raise QueryError(f"Error in query parameters: {exc.msg}", "invalid_request") from None
    return filters


def _v1_order(raw: Any) -> list[tuple[str, bool]]:
    if not isinstance(raw, list):
        raise QueryError("Error in query parameters: order_by must be a list", "invalid_request")
    keys: list[tuple[str, bool]] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("col"), str):
            raise QueryError(f"Error in query parameters: bad order_by entry {item!r}", "invalid_request")
        direction = str(item.get("dir", "asc")).lower()
        if direction not in ("asc", "desc"):
            raise _bad_param(f"dir must be asc or desc, got {direction!r}")
        keys.append((item["col"], direction == "desc"))
    if not any(col == "id" for col, _ in keys):
        keys.append(("id", False))  # id is always the tiebreak
    return keys


def list_instances(rows: Sequence[dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
    """The ``GET /api/v1/instances/`` envelope for ``rows`` (every live instance) and the raw query params."""
    filters = _v1_filters(_json_param(params, "select_filters", {}))
    keys = _v1_order(_json_param(params, "order_by", [{"col": "id", "dir": "asc"}]))
    limit = _v1_limit(_json_param(params, "limit", None))
    token = _json_param(params, "after_token", None)
    offset = decode_token(token) if token else 0
    cols = _json_param(params, "select_cols", ["*"])
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise QueryError("Error in query parameters: select_cols must be a list of names", "invalid_request")
    try:
        found = [r for r in rows if matches(r, filters)]
    except QueryError as exc:
        raise QueryError(f"Error in query parameters: {exc.msg}", "invalid_request") from None
    ordered = _sort(found, keys)
    page = ordered[offset : offset + limit]
    if "*" not in cols:
        wanted = ["id", *(c for c in cols if c != "id")]
        page = [{c: r.get(c) for c in wanted} for r in page]  # unknown columns come back as null
    label_counts: dict[str, int] = {}
    for row in rows:
        label = row.get("label") or ""
        label_counts[label] = label_counts.get(label, 0) + 1
    more = offset + limit < len(ordered)
    return {
        "success": True,
        "instances": page,
        "instances_found": len(found),
        "total_instances": len(rows),
        "label_counts": label_counts,
        "next_token": encode_token(offset + limit) if more else None,
    }
