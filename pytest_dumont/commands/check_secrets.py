"""``dumont check-secrets PATH...``: fail when cassettes, reports or logs hold an API key, a private key or a match
of a configured pattern (CI runs it over ``cassettes/``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

NAME = "check-secrets"
HELP = "scan cassettes, reports and logs for API keys, private keys and configured patterns; exit 1 on any hit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or directories to scan")
    parser.add_argument(
        "--pattern",
        action="append",
        default=[],
        metavar="REGEX",
        help="a further secret pattern (repeatable; $DUMONT_SECRET_PATTERN is always added)",
    )


def run(args: argparse.Namespace) -> int:
    from pytest_dumont.secrets.guard import files_under, scan

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"dumont check-secrets: no such file or directory: {', '.join(map(str, missing))}")
        return 2
    patterns = list(args.pattern) + (
        [os.environ["DUMONT_SECRET_PATTERN"]] if os.environ.get("DUMONT_SECRET_PATTERN") else []
    )
    secrets = [os.environ["VAST_API_KEY"]] if os.environ.get("VAST_API_KEY") else []
    findings = scan(args.paths, patterns, secrets)
    for finding in findings:
        print(finding)
    count = sum(1 for _ in files_under(args.paths))
    if findings:
        print(
            f"dumont check-secrets: {len(findings)} secret(s) found in {count} file(s): scrub them, then rotate the key"
        )
        return 1
    print(f"dumont check-secrets: {count} file(s) clean")
    return 0
