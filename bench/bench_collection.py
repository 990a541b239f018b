"""Collection overhead of the plugin: 2000 trivial tests collected with pytest-dumont vs ``-p no:dumont``.

Side by side in one run: each round collects the same suite once each way (alternating which goes first), in a fresh
``python -m pytest --collect-only`` (interpreter start included, as users pay it). Usage:
``python bench/bench_collection.py [-n 7] [--tests 2000]``. Nothing is asserted: read the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGINS_OFF = ["-p", "no:randomly", "-p", "no:cacheprovider"]


def collect(directory: Path, extra: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *PLUGINS_OFF, *extra],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=7)
    parser.add_argument("--tests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        per_file = 100
        for f in range(args.tests // per_file):
            body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(per_file))
            (root / f"test_m{f}.py").write_text(body)
        collect(root, [])  # warm the file cache and the bytecode
        with_plugin: list[float] = []
        without: list[float] = []
        for r in range(args.rounds):
            order = [("on", []), ("off", ["-p", "no:dumont"])]
            for name, extra in order if r % 2 == 0 else order[::-1]:
                (with_plugin if name == "on" else without).append(collect(root, extra))
        ratios = [a / b for a, b in zip(with_plugin, without, strict=True)]
        print(f"{args.tests} tests, {args.rounds} rounds (fresh process each, interpreter start included)")
        print(f"with the plugin:  median {statistics.median(with_plugin):.3f} s")
        print(f"-p no:dumont:     median {statistics.median(without):.3f} s")
        print(
            f"ratio per round:  median {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
