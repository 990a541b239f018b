"""pytest-xdist: instances, provisioning overhead and concurrency with ``-n 4`` in shared and per-worker mode.

Side by side in one run, against one standalone emulator (``seed`` timeline x0.05: about 4 s from create to SSH):
``-n 1``, ``-n 4 --dumont-xdist=shared`` and ``-n 4 --dumont-xdist=per-worker``, each with 8 trivial GPU tests.
From the emulator's history: instances created, and the provisioning wall (first create to last SSH up); from the
tests: the hand-over lag (SSH up to the first GPU test's start). Usage: ``python bench/bench_xdist.py [-n 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from standalone_emulator import start_emulator

SUITE = "".join(
    f"""
def test_gpu_{i}(vast_gpu):
    import time
    with open("starts", "a") as f:
        f.write(repr(time.time()) + "\\n")
"""
    for i in range(8)
)


def history(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/_emulator/instances/", timeout=10) as answer:  # noqa: S310  # our loopback URL
        data = json.load(answer)
    return list(data["instances"] if isinstance(data, dict) else data)


def run(root: Path, url: str, key: str, extra: list[str]) -> dict[str, float]:
    before = {row["id"] for row in history(url)}
    (root / "starts").unlink(missing_ok=True)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:benchmark"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "DUMONT_", "GITHUB_"))}
    env["VAST_API_KEY"] = key
    subprocess.run(
        [*args, "--dumont-mode=emulator", f"--dumont-api-url={url}", *extra],
        cwd=root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rows = [r for r in history(url) if r["id"] not in before]
    created = [float(r["created_at"]) for r in rows]  # type: ignore[arg-type]
    ssh_up = [float(r["ssh_up_at"]) for r in rows]  # type: ignore[arg-type]
    first_test = min(float(line) for line in (root / "starts").read_text().split())
    return {
        "instances": len(rows),
        "provisioning": max(ssh_up) - min(created),
        "one": statistics.median(u - c for u, c in zip(ssh_up, created, strict=True)),
        "handover": first_test - min(ssh_up),
        "leaked": sum(1 for r in rows if not r["destroyed"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=3)
    parser.add_argument("--factor", type=float, default=0.05)
    args = parser.parse_args()
    cases = {
        "-n 1": ["-n", "1"],
        "-n 4 shared": ["-n", "4", "--dumont-xdist=shared"],
        "-n 4 per-worker": ["-n", "4", "--dumont-xdist=per-worker"],
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    proc, url, key = start_emulator("seed", args.factor)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "pytest.ini").write_text("[pytest]\n")
            (root / "test_gpu.py").write_text(SUITE)
            for _ in range(args.rounds):
                for name, extra in cases.items():
                    results[name].append(run(root, url, key, extra))
    finally:
        proc.terminate()
        proc.wait(60)
    print(
        f"{'case':<16} {'instances':>9} {'prov. wall s':>12} {'one inst. s':>11} {'ratio':>6} {'hand-over':>9} leaked"
    )
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"{name:<16} {med['instances']:>9.0f} {med['provisioning']:>12.2f} {med['one']:>11.2f} "
            f"{med['provisioning'] / med['one']:>6.2f} {med['handover']:>9.3f} {sum(r['leaked'] for r in rows):>6.0f}"
        )


if __name__ == "__main__":
    main()
