"""Reuse: session start to the first GPU test, for a run that rents and for the next, which adopts (--dumont-reuse).

Against a standalone emulator (its own process, as a real cloud boots elsewhere) on the ``seed`` timeline at full
pace (``--factor 1``: 73 s to running and about 85 s to SSH, as the seed run saw on Vast). The first run rents and
parks its instance; each following run adopts it (and parks it again), so one first run is compared with the median
of the adopting runs, all in fresh pytest processes with no other plugin loaded and a private state directory.

What is measured, per run: ``pytest_sessionstart`` (written down by the suite's conftest) to the start of the GPU
test's body (written down by the test), in wall seconds; and, from the run's JSON report, how long the GPU test
waited for its instance and, in an adopting run, the ``adopt`` phase itself (claim, API check, SSH with the pinned
key, deadline pushed on, key attached). The rest is the session's start-up (imports of the SSH stack, the watchdog's
start, the pool opened at the end of collection), which every run pays. As a floor, the same is measured for a run
whose only test uses no instance (pytest and the plugin starting, nothing rented or adopted). The ratio is the first
run's time over the adopting runs' median.
At the end every parked instance is released. Usage: ``python bench/bench_reuse.py [-n 3] [--factor 1]``.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from standalone_emulator import start_emulator

CONFTEST = """
import time

def pytest_sessionstart(session):
    with open("session_start", "w") as f:
        f.write(repr(time.time()))
"""

PLAIN = """
import time

def test_plain():
    with open("gpu_start", "w") as f:
        f.write(repr(time.time()))
"""

SUITE = """
import time

def test_gpu(ssh_session):
    with open("gpu_start", "w") as f:
        f.write(repr(time.time()))
    assert ssh_session.run("true").ok
"""


def environment(api: tuple[str, str], state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "DUMONT_", "GITHUB_", "PYTEST_", "CI"))}
    env.update(VAST_API_KEY=api[1], VAST_URL=api[0], XDG_STATE_HOME=str(state), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return env


def run(root: Path, env: dict[str, str], url: str, test: str = "test_suite.py") -> dict[str, float]:
    """One pytest process with --dumont-reuse: session start to GPU test start, the test's wait, the adopt phase."""
    for name in ("session_start", "gpu_start", "report.json"):
        (root / name).unlink(missing_ok=True)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "dumont", "-p", "no:cacheprovider", "--dumont-json=report.json"]
    args += ["--dumont-mode=emulator", f"--dumont-api-url={url}", "--dumont-reuse=10", "--dumont-boot-timeout=300"]
    subprocess.run([*args, test], cwd=root, check=True, capture_output=True, text=True, env=env)
    if test == "test_plain.py":
        return {"to_gpu_test": float((root / "gpu_start").read_text()) - float((root / "session_start").read_text())}
    (instance,) = json.loads((root / "report.json").read_text())["instances"]
    return {
        "to_gpu_test": float((root / "gpu_start").read_text()) - float((root / "session_start").read_text()),
        "waited": float(instance["tests"][0]["waited_seconds"]),
        "adopt": sum(float(p["duration"]) for p in instance["phases"] if p["name"] == "adopt"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=3, help="adopting runs after the first")
    parser.add_argument("--factor", type=float, default=1.0, help="seed timeline scale (1: full pace)")
    args = parser.parse_args()
    proc, url, key = start_emulator("seed", args.factor)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root, state = Path(tmp) / "suite", Path(tmp) / "state"
            root.mkdir()
            (root / "pytest.ini").write_text("[pytest]\n")
            (root / "conftest.py").write_text(CONFTEST)
            (root / "test_suite.py").write_text(SUITE)
            (root / "test_plain.py").write_text(PLAIN)
            env = environment((url, key), state)
            try:
                first = run(root, env, url)
                adopting, floor = [], []
                for _ in range(args.rounds):  # alternating, so that both see the same load
                    adopting.append(run(root, env, url))
                    floor.append(run(root, env, url, "test_plain.py")["to_gpu_test"])
            finally:
                release = [sys.executable, "-m", "pytest_dumont.cli", "release", "--all"]
                subprocess.run(release, env=env, check=False, capture_output=True, text=True)
    finally:
        proc.terminate()
        proc.wait(60)
    print(f"seed profile x {args.factor:g}; wall seconds: session start to the GPU test's start, the test's wait for")
    print("its instance, and the adopt phase")
    print(f"first run (rents, parks)          {first['to_gpu_test']:8.3f}  waited {first['waited']:7.3f}")
    totals = [r["to_gpu_test"] for r in adopting]
    second = statistics.median(totals)
    print(
        f"adopting runs, median of {len(adopting)}       {second:8.3f}  "
        f"waited {statistics.median(r['waited'] for r in adopting):7.3f}  "
        f"adopt {statistics.median(r['adopt'] for r in adopting):.3f}  (to GPU test min {min(totals):.3f}, "
        f"max {max(totals):.3f})"
    )
    print(f"floor: a run that rents nothing     {statistics.median(floor):8.3f}  (min {min(floor):.3f})")
    print(f"first / adopting                  {first['to_gpu_test'] / second:8.1f}x")


if __name__ == "__main__":
    main()
