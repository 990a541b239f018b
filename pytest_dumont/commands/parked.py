"""``dumont parked``: the instances ``--dumont-reuse`` left parked on this machine, what they cost and until when.

It reads the ledger file only: no key is needed, nothing is called.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

NAME = "parked"
HELP = "list the instances --dumont-reuse parked for the next session: $/h, cost so far, expiry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="PATH", help="ledger file (default: $DUMONT_LEDGER, else the state dir)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")


def run(args: argparse.Namespace) -> int:
    from pytest_dumont.commands._api import ledger_path
    from pytest_dumont.errors import DumontError
    from pytest_dumont.safety.ledger_file import LedgerFile
    from pytest_dumont.safety.parked import parked_entries

    try:
        entries = parked_entries(LedgerFile(ledger_path(args.ledger, os.environ)))
    except DumontError as exc:
        print(f"dumont parked: {exc.message}", file=sys.stderr)
        return 1
    now = time.time()
    rows: list[dict[str, Any]] = []
    for entry, info in entries:
        if info is None:
            print(f"dumont parked: skipped the corrupt entry {entry.label} ({entry.instance_id})", file=sys.stderr)
            continue
        rows.append(
            {
                "instance_id": entry.instance_id,
                "label": entry.label,
                "api_url": entry.api_url,
                "dph_total": info.dph_total,
                "parked_at": info.parked_at,
                "parked_seconds": max(0.0, min(now, info.expires) - info.parked_at),
                "cost_so_far_usd": info.cost_so_far(now),
                "expires": info.expires,
                "expired": info.expires <= now,
                "request": info.describe,
            }
        )
    if args.json:
        print(json.dumps({"parked": rows}, indent=2))
        return 0
    if not rows:
        print("no parked instances")
        return 0
    for row in rows:
        until = time.strftime("%H:%M", time.localtime(row["expires"]))
        state = (
            f"EXPIRED at {until} (its dead-man switch destroys it; `dumont reap` cleans the entry)"
            if row["expired"]
            else f"until {until}"
        )
        print(
            f"instance {row['instance_id']}  ${row['dph_total']:.4f}/h  parked {row['parked_seconds'] / 60:.1f} min "
            f"(${row['cost_so_far_usd']:.4f} so far)  {state}  - {row['request']}"
        )
    print(f"{len(rows)} parked: `dumont release ID` or `dumont release --all` destroys them")
    return 0
