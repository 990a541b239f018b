"""Prewarming: a suite of C seconds of CPU tests and one GPU test on an instance that boots in B seconds.

Side by side in one run, against a standalone emulator (its own process, as a real cloud boots elsewhere) on the
``seed`` timeline scaled so that B is close to C: the same suite with ``--dumont-prewarm=on`` and ``off``,
alternating, in fresh pytest processes. Wall is pytest's own session time ("passed in X s": from session start to
the destroy confirmed, interpreter start excluded). Target: wall <= 1.1 x max(B, C) with prewarming, against B + C
without. B is read from the JSON report (search to hand-over of the instance).
Usage: ``python bench/bench_prewarm.py [-n 3] [--cpu 4] [--factor 0.05]``. Nothing is asserted.
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
from pathlib import Path

SUITE = """
import time

def _busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

{cpu}

def test_z_gpu(ssh_session):
    assert ssh_session.run("true").ok
"""


def start_emulator(factor: float) -> tuple[subprocess.Popen[str], str, str]:
    """A standalone emulator on loopback; its URL and key are the first lines it prints."""
    args = [sys.executable, "-m", "pytest_dumont.emulator", "--port", "0", "--quiet", "--profile", "seed"]
    proc = subprocess.Popen([*args, "--time-factor", str(factor)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    key = proc.stdout.readline().split()[-1]
    return proc, url, key


def run(root: Path, prewarm: str, api: tuple[str, str]) -> tuple[float, float]:
    """Wall seconds of the pytest process, and B (search to hand-over) from its JSON report."""
    report = root / f"r-{prewarm}.json"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist"]
    args += ["--dumont-mode=emulator", f"--dumont-api-url={api[0]}"]
    args += [f"--dumont-prewarm={prewarm}", f"--dumont-json={report}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "DUMONT_", "GITHUB_"))}
    env["VAST_API_KEY"] = api[1]
    out = subprocess.run(args, cwd=root, check=True, capture_output=True, text=True, env=env).stdout
    wall = float(re.findall(r" in ([0-9.]+)s", out)[-1])
    (instance,) = json.loads(report.read_text())["instances"]
    phases = {p["name"]: p["duration"] for p in instance["phases"]}
    boot = sum(phases.get(n, 0.0) for n in ("search", "create", "wait_running", "wait_ssh"))
    return wall, boot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=3)
    parser.add_argument("--cpu", type=float, default=4.0, help="C: seconds of CPU tests")
    parser.add_argument("--factor", type=float, default=0.05, help="seed timeline scale (0.05: B about 4.3 s)")
    args = parser.parse_args()
    tests = 8
    cpu = "\n".join(f"def test_cpu_{i}():\n    _busy({args.cpu / tests})\n" for i in range(tests))
    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    proc, url, key = start_emulator(args.factor)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            measure(Path(tmp), args, cpu, results, (url, key))
    finally:
        proc.terminate()
        proc.wait(60)
    boot = statistics.median(b for rows in results.values() for _, b in rows)
    c = args.cpu
    print(
        f"C = {c:.2f} s of CPU tests ({tests} tests), B = {boot:.2f} s (median search to hand-over), "
        f"{args.rounds} rounds"
    )
    for mode in ("on", "off"):
        walls = [w for w, _ in results[mode]]
        med = statistics.median(walls)
        print(
            f"prewarm {mode:<3}: wall median {med:.2f} s  = {med / max(boot, c):.2f} x max(B, C)"
            f"  = {med / (boot + c):.2f} x (B + C)"
        )
    print("(wall: pytest's session time, collection to the last destroy confirmed)")


def measure(
    root: Path, args: argparse.Namespace, cpu: str, results: dict[str, list[tuple[float, float]]], api: tuple[str, str]
) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_suite.py").write_text(SUITE.format(cpu=cpu))
    for r in range(args.rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            results[mode].append(run(root, mode, api))


if __name__ == "__main__":
    main()
