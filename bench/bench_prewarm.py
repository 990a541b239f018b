"""Prewarming: a suite of C seconds of CPU tests and one GPU test on an instance that boots in B seconds.

Side by side in one run, against a standalone emulator (its own process, as a real cloud boots elsewhere) on the
``seed`` timeline scaled so that B is close to C: the same suite with ``--dumont-prewarm=on`` and ``off``,
alternating, in fresh pytest processes with no other plugin loaded (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 -p dumont``:
the plugins of this development environment would add their own summary time to both). Target: wall <= 1.1 x
max(B, C) with prewarming, against B + C without.

What is measured, per run:

- wall: pytest's own session time ("passed in X s": session start to the summary, so collection, opening the pool,
  the destroy and its confirmation, the watchdog's goodbye and the reports are in it; interpreter start is not).
  The process's wall (interpreter start to exit) is printed beside it.
- B: the instance's real boot, from the emulator's history: its create to its SSH server up. Searching, creating,
  polling and connecting are the plugin's work and count in the wall, not in B.
- C: the CPU tests' real time: first CPU test start to last CPU test end, as the tests write it down.
- hand-over: the emulator's SSH up to the GPU test's start (noticing SSH, connecting, reading the facts).

The ratios are per run, then the median. Usage: ``python bench/bench_prewarm.py [-n 5] [--cpu 4] [--factor 0.05]``.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from standalone_emulator import start_emulator

SUITE = """
import time

def _busy(seconds):
    start = time.time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    with open("cpu_times", "a") as f:
        f.write(f"{{start!r}} {{time.time()!r}}\\n")

{cpu}

def test_z_gpu(ssh_session):
    with open("gpu_start", "w") as f:
        f.write(repr(time.time()))
    assert ssh_session.run("true").ok
"""


def history(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/_emulator/instances/", timeout=10) as answer:  # noqa: S310  # our loopback URL
        return list(json.load(answer)["instances"])


def run(root: Path, prewarm: str, api: tuple[str, str]) -> dict[str, float]:
    """One pytest process: its session and process walls, B and C as above, the hand-over and what leaked."""
    before = {row["id"] for row in history(api[0])}
    for name in ("cpu_times", "gpu_start"):
        (root / name).unlink(missing_ok=True)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "dumont", "-p", "no:cacheprovider"]
    args += ["--dumont-mode=emulator", f"--dumont-api-url={api[0]}", f"--dumont-prewarm={prewarm}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "DUMONT_", "GITHUB_", "PYTEST_"))}
    env["VAST_API_KEY"] = api[1]
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    started = time.perf_counter()
    out = subprocess.run(args, cwd=root, check=True, capture_output=True, text=True, env=env).stdout
    process = time.perf_counter() - started
    (row,) = [r for r in history(api[0]) if r["id"] not in before]
    created, ssh_up = float(row["created_at"]), float(row["ssh_up_at"])  # type: ignore[arg-type]
    spans = [tuple(map(float, line.split())) for line in (root / "cpu_times").read_text().splitlines()]
    return {
        "wall": float(re.findall(r" in ([0-9.]+)s", out)[-1]),
        "process": process,
        "B": ssh_up - created,
        "C": max(end for _, end in spans) - min(start for start, _ in spans),
        "handover": float((root / "gpu_start").read_text()) - ssh_up,
        "leaked": 0.0 if row["destroyed"] else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--cpu", type=float, default=4.0, help="C: seconds of CPU tests")
    parser.add_argument("--factor", type=float, default=0.05, help="seed timeline scale (0.05: B about 4.3 s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    tests = 8
    cpu = "\n".join(f"def test_cpu_{i}():\n    _busy({args.cpu / tests})\n" for i in range(tests))
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    proc, url, key = start_emulator("seed", args.factor)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            measure(Path(tmp), args.rounds, cpu, results, (url, key))
    finally:
        proc.terminate()
        proc.wait(60)
    if args.verbose:
        for mode, runs in results.items():
            for r in runs:
                print(f"{mode:<3} " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()))
    rows = [r for runs in results.values() for r in runs]
    boot = statistics.median(r["B"] for r in rows)
    c = statistics.median(r["C"] for r in rows)
    print(f"{args.rounds} rounds; B = {boot:.2f} s (emulator: create to SSH up), C = {c:.2f} s ({tests} CPU tests)")
    print("prewarm  wall s  process s  / max(B, C) median (min-max)  / (B + C)  hand-over s  leaked")
    for mode in ("on", "off"):
        runs = results[mode]
        over_max = [r["wall"] / max(r["B"], r["C"]) for r in runs]
        over_sum = [r["wall"] / (r["B"] + r["C"]) for r in runs]
        print(
            f"{mode:<7} {statistics.median(r['wall'] for r in runs):>6.2f} "
            f"{statistics.median(r['process'] for r in runs):>10.2f} "
            f"{statistics.median(over_max):>14.3f} ({min(over_max):.3f}-{max(over_max):.3f}) "
            f"{statistics.median(over_sum):>10.3f} {statistics.median(r['handover'] for r in runs):>11.3f} "
            f"{sum(r['leaked'] for r in runs):>7.0f}"
        )
    print("(wall: pytest's session time, collection to the last destroy confirmed and the reports written)")


def measure(
    root: Path, rounds: int, cpu: str, results: dict[str, list[dict[str, float]]], api: tuple[str, str]
) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_suite.py").write_text(SUITE.format(cpu=cpu))
    for r in range(rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            results[mode].append(run(root, mode, api))


if __name__ == "__main__":
    main()
