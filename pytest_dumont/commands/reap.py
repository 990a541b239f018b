"""``dumont reap``: destroy instances a dead session left running, by ledger file and/or label prefix.

Meant for an ``if: always()`` CI step after pytest and for a cron job. The key comes from ``VAST_API_KEY`` (or
``--dumont-api-key-file``), never from a flag; the URL from ``--dumont-api-url``, ``VAST_URL`` or the default: resolved
as the plugin resolves them (``commands/_api.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from pytest_dumont.commands._api import add_api_arguments, teardown_retry_seconds

NAME = "reap"
HELP = "destroy instances left running by dead pytest-dumont sessions (ledger file and/or label prefix)"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="PATH", help="ledger file (default: $DUMONT_LEDGER, else the state dir)")
    parser.add_argument("--no-ledger", action="store_true", help="do not read the ledger file (label prefix only)")
    parser.add_argument(
        "--label-prefix", metavar="PREFIX", help="also destroy every instance whose label starts so, e.g. dumont-"
    )
    parser.add_argument("--older-than", metavar="AGE", type=parse_duration, help="spare younger instances (e.g. 2h)")
    parser.add_argument("--include-kept", action="store_true", help="also destroy --dumont-keep-on-failure instances")
    parser.add_argument("--dry-run", action="store_true", help="say what would be destroyed, destroy nothing")
    # The plugin's own names (as in pytest and `dumont offers`); --url and --api-key-file stay as short aliases.
    add_api_arguments(parser, destroys=True)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")


def report_json(report: Any) -> dict[str, Any]:
    """The ``--json`` document: ids and labels only (never the key nor an SSH address)."""
    return {
        "ok": report.ok,
        "destroyed": [{"instance_id": i, "label": label} for i, label in report.destroyed],
        "would_destroy": [{"instance_id": i, "label": label} for i, label in report.would_destroy],
        "failed": [{"instance_id": i, "reason": reason} for i, reason in report.failed],
        "skipped": list(report.skipped),
    }


def run(args: argparse.Namespace) -> int:
    from pytest_dumont.commands._api import api_endpoint, ledger_path
    from pytest_dumont.commands._progress import waiting
    from pytest_dumont.errors import ConfigurationError, DumontError
    from pytest_dumont.safety.ledger_file import LedgerFile
    from pytest_dumont.safety.reap import reap
    from pytest_dumont.vast.client import VastClient
    from pytest_dumont.vast.retry import RetryPolicy

    try:
        url, key = api_endpoint(args, os.environ)
        ledger = None if args.no_ledger else LedgerFile(ledger_path(args.ledger, os.environ))
        policy = RetryPolicy(teardown_seconds=teardown_retry_seconds(args, os.environ))
    except ConfigurationError as exc:
        print(f"dumont reap: {exc.message}", file=sys.stderr)
        return 2
    if key is None:
        print("dumont reap: set VAST_API_KEY (or --dumont-api-key-file PATH); the key is never taken from a flag")
        return 2
    if args.no_ledger and args.label_prefix is None:
        print("dumont reap: --no-ledger needs --label-prefix (else there is nothing to look for)", file=sys.stderr)
        return 2
    client = VastClient(url, key.reveal(), policy=policy)
    try:
        with waiting("reaping: listing and destroying instances"):
            report = reap(
                client,
                ledger=ledger,
                label_prefix=args.label_prefix,
                older_than_s=args.older_than,
                dry_run=args.dry_run,
                include_kept=args.include_kept,
            )
    except DumontError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": exc.message}))
        print(f"dumont reap: {exc.message}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps(report_json(report), indent=2))
        return 0 if report.ok else 1
    for instance_id, label in report.would_destroy:
        print(f"would destroy instance {instance_id} ({label})")
    for instance_id, label in report.destroyed:
        print(f"destroyed instance {instance_id} ({label}), confirmed")
    for instance_id, reason in report.failed:
        print(f"COULD NOT DESTROY instance {instance_id}: {reason}", file=sys.stderr)
    for note in report.skipped:
        print(f"left alone: {note}")
    if not (report.destroyed or report.would_destroy or report.failed):
        print("nothing to reap")
    return 0 if report.ok else 1
