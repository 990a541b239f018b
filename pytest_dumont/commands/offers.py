"""``dumont offers``: what the configured filters would rent now, cheapest first, with a projected suite cost.

It takes the plugin's own flags (``--dumont-gpu``, ``--dumont-max-dph``...), resolved by the plugin's own resolver
with the same defaults and environment variables (``commands/_api.py``), and searches as the Provisioner does
(``vast.offers.find_offers``), so what it lists is what a session would try, in that order. Ini files are not read:
this is not a pytest run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from pytest_dumont.commands._api import add_api_arguments, add_option_arguments

NAME = "offers"
HELP = "list the offers the plugin's filters would rent now, cheapest first, with $/h and a projected suite cost"

# Not the plugin's MissingApiKey text: that one suggests --dumont-mode=emulator, a pytest option this command lacks.
NO_KEY = (
    "needs a Vast.ai API key: set the environment variable VAST_API_KEY (or pass --dumont-api-key-file PATH). "
    "To try it without an account, run `dumont emulator` in another shell and set VAST_URL and VAST_API_KEY to "
    "the URL and key it prints"
)

# the plugin's offer filters this command takes (with the API's URL and key file), by OptionSpec name
FILTER_OPTIONS = ("gpu", "max-dph", "min-disk", "min-reliability", "disk", "bid")


def _typed(flag: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """One of the plugin's parsers as an argparse type for this command's own flags, with the plugin's message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{flag}={text!r}: {exc}") from None

    convert.__name__ = flag  # argparse names the type in its message
    return convert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_arguments(parser, FILTER_OPTIONS)
    add_api_arguments(parser)
    parser.add_argument(
        "--minutes", type=_typed("--minutes", _positive), default=10.0, help="expected suite runtime (default: 10)"
    )
    parser.add_argument("--limit", type=_typed("--limit", _count), default=10, help="offers shown (default: 10)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")


def _positive(text: str) -> float:
    from pytest_dumont.session.settings import parse_positive_float

    return parse_positive_float(text)


def _count(text: str) -> int:
    from pytest_dumont.session.settings import parse_positive_int

    return parse_positive_int(text)


def projection(offer: Any, disk_gb: float, minutes: float) -> dict[str, float]:
    """What ``minutes`` on ``offer`` costs: the simple figure and the billed estimate's GPU + storage split."""
    hours = minutes / 60.0
    gpu = offer.dph_base * hours
    storage = offer.storage_dph(disk_gb) * hours
    return {"simple_usd": offer.dph_total * hours, "gpu_usd": gpu, "storage_usd": storage, "billed_usd": gpu + storage}


def offer_row(offer: Any, disk_gb: float, minutes: float) -> dict[str, Any]:
    return {
        "id": offer.id,
        "gpu_name": offer.gpu_name,
        "num_gpus": offer.num_gpus,
        "dph_total": offer.dph_total,
        "dph_base": offer.dph_base,
        "storage_dph": offer.storage_dph(disk_gb),
        "geolocation": offer.geolocation,
        "reliability": offer.reliability,
        "disk_space": offer.disk_space,
        "verified": offer.verified,
        "machine_id": offer.machine_id,
        "projected": projection(offer, disk_gb, minutes),
    }


def table(rows: list[dict[str, Any]], minutes: float) -> list[str]:
    head = f"{'offer':>10}  {'GPU':<16} {'$/h':>8}  {'region':<24} {'reliab.':>7} {'disk GB':>8}  {minutes:g} min"
    lines = [head]
    for r in rows:
        gpu = f"{r['num_gpus']}x {r['gpu_name']}"
        p = r["projected"]
        lines.append(
            f"{r['id']:>10}  {gpu:<16} {r['dph_total']:>8.4f}  {(r['geolocation'] or 'unknown')[:24]:<24} "
            f"{r['reliability']:>7.3f} {r['disk_space']:>8g}  ${p['simple_usd']:.4f} "
            f"(billed est. ${p['billed_usd']:.4f}: GPU ${p['gpu_usd']:.4f} + storage ${p['storage_usd']:.4f})"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    from pytest_dumont.commands._api import api_endpoint, option_values
    from pytest_dumont.commands._progress import waiting
    from pytest_dumont.errors import ConfigurationError, DumontError
    from pytest_dumont.vast.client import VastClient
    from pytest_dumont.vast.offers import OfferFilters, find_offers

    try:
        values = option_values(args, FILTER_OPTIONS, os.environ)
        url, key = api_endpoint(args, os.environ)
    except ConfigurationError as exc:
        print(f"dumont offers: {exc.message}", file=sys.stderr)
        return 2
    if key is None:
        print(f"dumont offers: {NO_KEY}", file=sys.stderr)
        return 2
    filters = OfferFilters(
        gpu_names=values["gpu"],
        max_dph=values["max-dph"],
        min_disk_gb=values["min-disk"],
        min_reliability=values["min-reliability"],
        disk_gb=values["disk"],
        bid=values["bid"],
    )
    client = VastClient(url, key.reveal())
    error: DumontError | None = None
    offers: list[Any] = []
    try:
        with waiting(f"searching offers for {filters.describe()}"):
            offers = find_offers(client, filters)
    except DumontError as exc:
        error = exc
    finally:
        client.close()
    rows = [offer_row(o, filters.disk_gb, args.minutes) for o in offers[: args.limit]]
    if args.json:
        doc = {"filters": filters.describe(), "minutes": args.minutes, "matching": len(offers), "offers": rows}
        if error is not None:
            doc["error"] = error.message
        print(json.dumps(doc, indent=2))
    elif error is None:
        print("\n".join(table(rows, args.minutes)))
        print(f"{len(offers)} offer(s) match {filters.describe()}; a session rents the first that boots")
    if error is not None:
        print(f"dumont offers: {error.message}", file=sys.stderr)
        return 1  # no offer matches, the key was refused, the API kept failing: all found, none usage
    return 0
