"""``dumont release [ID ... | --all]``: destroy instances ``--dumont-reuse`` parked, now rather than at their deadline.

The key comes from ``VAST_API_KEY`` (or ``--dumont-api-key-file``), never from a flag; the URL from
``--dumont-api-url``, ``VAST_URL`` or the default, resolved as the plugin resolves them. An id that is not parked on
this machine is named, and the command exits 1. So is one that a session is adopting right now (it is that session's:
it parks or destroys it at its end); ``--all`` skips those with a line.
"""

from __future__ import annotations

import argparse
import os
import sys

from pytest_dumont.commands._api import add_api_arguments, teardown_retry_seconds

NAME = "release"
HELP = "destroy instances parked by --dumont-reuse (by id, or --all)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", metavar="ID", type=int, nargs="*", help="parked instance ids (see `dumont parked`)")
    parser.add_argument("--all", action="store_true", help="every parked instance of this API")
    parser.add_argument("--ledger", metavar="PATH", help="ledger file (default: $DUMONT_LEDGER, else the state dir)")
    add_api_arguments(parser, destroys=True)


def run(args: argparse.Namespace) -> int:
    from pytest_dumont.commands._api import api_endpoint, ledger_path
    from pytest_dumont.errors import ConfigurationError, DumontError
    from pytest_dumont.safety.ledger_file import LedgerFile
    from pytest_dumont.safety.release import release
    from pytest_dumont.vast.client import VastClient
    from pytest_dumont.vast.retry import RetryPolicy

    if bool(args.ids) == bool(args.all):
        print("dumont release: give parked instance ids, or --all (see `dumont parked`)", file=sys.stderr)
        return 2
    try:
        url, key = api_endpoint(args, os.environ)
        ledger = LedgerFile(ledger_path(args.ledger, os.environ))
        policy = RetryPolicy(teardown_seconds=teardown_retry_seconds(args, os.environ))
    except ConfigurationError as exc:
        print(f"dumont release: {exc.message}", file=sys.stderr)
        return 2
    if key is None:
        print("dumont release: set VAST_API_KEY (or --dumont-api-key-file PATH); the key is never taken from a flag")
        return 2
    client = VastClient(url, key.reveal(), policy=policy)
    try:
        report = release(client, ledger, None if args.all else list(args.ids))
    except DumontError as exc:
        print(f"dumont release: {exc.message}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for instance_id in report.destroyed:
        print(f"released instance {instance_id}: destroyed, confirmed")
    for instance_id, reason in report.failed:
        print(f"COULD NOT DESTROY instance {instance_id}: {reason}", file=sys.stderr)
    for instance_id, who in report.busy:
        if args.all:
            print(f"skipped instance {instance_id}: {who}")
        else:
            print(f"dumont release: instance {instance_id} is {who}: not released", file=sys.stderr)
    for instance_id in report.unknown:
        print(
            f"dumont release: instance {instance_id} is not parked here (for {url}); `dumont parked` lists them",
            file=sys.stderr,
        )
    if args.all and not report.destroyed and not report.failed and not report.busy:
        print("no parked instances to release")
    return 0 if report.ok and (args.all or not report.busy) else 1
