"""Reference prices (other clouds' GPU instances, for the report's comparison): the package's list, or a team's own
file (``--dumont-reference-prices``), checked entry by entry so that a typo is an error naming the file and the entry.

A file is JSON: ``{"prices": [{"provider", "instance_type", "gpu", "usd_per_hour", "region", "date", "source"}, ...]}``
(``note`` and a top-level ``description`` optional); ``date`` is when the figure was read, as YYYY-MM-DD; ``source``
the public page it was read from.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

PACKAGED = "data/cloud_prices.json"
TEXT_FIELDS = ("provider", "instance_type", "gpu", "region", "source")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReferencePricesError(ValueError):
    """A reference-prices file that cannot be used; the message names the file, the entry and what to fix."""


def _entry(where: str, index: int, raw: Any) -> dict[str, Any]:
    name = raw.get("provider") if isinstance(raw, dict) else None
    label = f"{where}: entry {index}" + (f" ({name})" if isinstance(name, str) and name else "")
    if not isinstance(raw, dict):
        raise ReferencePricesError(f"{label} is not an object: give provider, instance_type, gpu, usd_per_hour, ...")
    for key in TEXT_FIELDS:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ReferencePricesError(f"{label}: {key} is missing or empty (a text such as the provider's page)")
    price = raw.get("usd_per_hour")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price <= 0:
        raise ReferencePricesError(f"{label}: usd_per_hour must be a positive number of dollars, got {price!r}")
    date = raw.get("date")
    if not isinstance(date, str) or not DATE.match(date):
        raise ReferencePricesError(f"{label}: date must be the day the price was read, YYYY-MM-DD, got {date!r}")
    entry = {key: raw[key] for key in (*TEXT_FIELDS, "date")}
    entry["usd_per_hour"] = float(price)
    entry["note"] = str(raw.get("note") or "")
    return entry


def parse(text: str, where: str) -> dict[str, Any]:
    """The checked prices of one file's text: ``{"source": where, "description", "prices": [...]}``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReferencePricesError(f"{where} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise ReferencePricesError(f'{where}: expected {{"prices": [...]}} (see docs/reporting.md, reference prices)')
    prices = [_entry(where, i, raw) for i, raw in enumerate(data["prices"])]
    return {"source": where, "description": str(data.get("description") or ""), "prices": prices}


def load(path: str | Path | None = None) -> dict[str, Any]:
    """The prices of ``path``, or the package's own list when None."""
    if path is None:
        text = resources.files("pytest_dumont").joinpath(PACKAGED).read_text(encoding="utf-8")
        return parse(text, f"pytest-dumont's {PACKAGED}")
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReferencePricesError(f"cannot read {file}: {exc.strerror or exc}") from None
    return parse(text, str(file))


def scenario_operations() -> list[dict[str, Any]]:
    """The scenario library's operations (snapshot, failover, a model test) and how long each takes, priced only in a
    run of the scenarios."""
    text = resources.files("pytest_dumont").joinpath("data/scenario_operations.json").read_text(encoding="utf-8")
    operations: list[dict[str, Any]] = json.loads(text)["operations"]
    return operations
