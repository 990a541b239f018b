"""What a ledger file write costs as the file grows: the indented encoding it used to have against one entry per line.

Every rental writes the ledger file three times (expecting, created, settled), under its lock. A machine that runs
many sessions used to keep a week of destroyed entries, however many: this day's test runs left 1631. The bench
writes N entries both ways, side by side in one process, and prints the medians and their ratio.
Usage: ``python bench/bench_ledger.py [-n 1631] [--rounds 15]``. Nothing is asserted: read the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from pytest_dumont.safety.ledger_file import KEEP_DESTROYED_MAX, LedgerEntry, LedgerFile
from pytest_dumont.statefile import write_atomic


def indented(path: Path, entries: list[LedgerEntry]) -> None:
    """The format before: the whole document through ``json.dumps(indent=1)``."""
    payload = json.dumps({"version": 1, "entries": [asdict(e) for e in entries]}, indent=1)
    write_atomic(path, payload + "\n", durable=True)


def timed(write: object, *args: object) -> float:
    started = time.perf_counter()
    write(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--entries", type=int, default=1631)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    entries = [
        LedgerEntry(f"dumont-{i:010x}-1", "s", "http://127.0.0.1:1", created=0.0, dph_total=0.2, state="destroyed")
        for i in range(args.entries)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ledger = LedgerFile(Path(tmp, "ledger.json"))
        old, new, capped = [], [], []
        for _ in range(args.rounds):
            old.append(timed(indented, ledger.path, entries))
            new.append(timed(ledger._write, entries))
            capped.append(timed(ledger._write, entries[-KEEP_DESTROYED_MAX:]))
    medians = [statistics.median(v) * 1000 for v in (old, new, capped)]
    print(
        f"{args.entries} entries, medians of {args.rounds}: indented {medians[0]:.1f} ms, one per line "
        f"{medians[1]:.1f} ms (ratio {medians[0] / medians[1]:.1f}); the {KEEP_DESTROYED_MAX} a file now keeps at "
        f"most: {medians[2]:.1f} ms"
    )


if __name__ == "__main__":
    main()
