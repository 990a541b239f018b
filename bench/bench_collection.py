"""Collection overhead of the plugin: 2000 trivial tests collected with pytest-dumont and without it.

Two setups, both ways side by side in one run, alternating (which way goes first changes every round):

- installed: this environment as it is, every installed pytest plugin loading itself; without = ``-p no:dumont``.
- bare: no plugin but this one (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``): with = ``-p dumont``, without = ``-p`` of an
  empty module, so that both pay the entry-point scan ``-p`` costs pytest. Its base is smaller, so the same overhead
  is a larger share: a project whose only plugin is pytest-dumont.

Each fresh ``python -m pytest --collect-only`` process writes and reads its bytecode (in a private cache directory)
as an installed package does, even where ``PYTHONDONTWRITEBYTECODE`` is set (``--no-bytecode`` compiles every module
in every process instead). Measures:

1. CPU time (user + sys, from ``os.wait4``) of fresh processes, interpreter start included: unlike wall time it is
   not lengthened by other work on a shared machine. Median and interquartile range of the per-round ratio; the
   wall time of the same processes beside it.
2. In one process (bare setup), ``pytest.main(["--collect-only"])`` again and again each way: the modules stay
   imported, so the difference is the per-test work of the plugin's hooks. Process CPU time.
3. ``python -X importtime``: the cumulative import time of ``pytest_dumont.plugin`` after ``import pytest``.
4. ``--callgrind [N]`` (needs valgrind): the instructions the main pytest process executes, N runs each way
   (``PYTHONHASHSEED=0``): the steadiest measure, about 25 s per run on this machine.

Usage: ``python bench/bench_collection.py [-n 21] [--tests 2000] [--callgrind [1]] [--no-bytecode]``. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

NOOP = "noop_plugin"  # an empty module beside the tests: what the bare setup loads instead of pytest-dumont


@dataclass(frozen=True)
class Setup:
    name: str
    env: dict[str, str]
    with_plugin: list[str]
    without: list[str]

    def ways(self, first: bool) -> list[tuple[str, list[str]]]:
        ways = [("with", self.with_plugin), ("without", self.without)]
        return ways if first else ways[::-1]


def setups(pycache: Path | None) -> list[Setup]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONHASHSEED"] = "0"
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    off = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    return [
        Setup("installed", env, off, [*off, "-p", "no:dumont"]),
        Setup(
            "bare",
            {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
            ["-p", "no:cacheprovider", "-p", "dumont"],
            ["-p", "no:cacheprovider", "-p", NOOP],
        ),
    ]


def write_suite(root: Path, tests: int, per_file: int = 100) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / f"{NOOP}.py").write_text('"""Loads nothing."""\n')
    for f in range(tests // per_file):
        (root / f"test_m{f}.py").write_text("".join(f"def test_{i}():\n    pass\n\n" for i in range(per_file)))


def collect_command(extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "--collect-only", "-q", *extra]


def child_run(root: Path, setup: Setup, extra: Sequence[str]) -> tuple[float, float]:
    """CPU seconds (user + sys) and wall seconds of one fresh collection process."""
    started = time.perf_counter()
    proc = subprocess.Popen(collect_command(extra), cwd=root, stdout=subprocess.DEVNULL, env=setup.env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"collection failed with exit {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def in_process_run(root: Path, setup: Setup, extra: Sequence[str]) -> float:
    """Process CPU seconds of one ``pytest.main`` collection in this process (modules already imported)."""
    import pytest

    gc.collect()
    with environment(setup.env), contextlib.redirect_stdout(io.StringIO()):
        started = time.process_time()
        code = pytest.main(["--collect-only", "-q", "-s", *extra, str(root)])
        spent = time.process_time() - started
    if code != 0:
        raise RuntimeError(f"in-process collection failed with exit {code}")
    return spent


def plugin_import_ms(setup: Setup) -> float:
    """The cumulative import time of pytest_dumont.plugin after pytest's, in milliseconds."""
    code = "import pytest, _pytest.main, _pytest.python, _pytest.terminal\nimport pytest_dumont.plugin\n"
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=setup.env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    (cumulative,) = [int(line.split("|")[1]) for line in err.splitlines() if line.endswith("| pytest_dumont.plugin")]
    return cumulative / 1000.0


def instructions(root: Path, setup: Setup, extra: Sequence[str]) -> int:
    """Instructions executed by the main process of one collection, counted by callgrind.

    A forked child inherits the parent's counts, so only the first process valgrind names is read.
    """
    with tempfile.TemporaryDirectory() as out:
        err = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p", *collect_command(extra)],
            cwd=root,
            env=setup.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        ).stderr
    main = re.search(r"^==(\d+)==", err, re.MULTILINE)
    assert main is not None, err
    return int(re.findall(rf"^=={main.group(1)}== Collected : (\d+)", err, re.MULTILINE)[-1])


def alternate(rounds: int, setup: Setup, measure: Callable[[str, Sequence[str]], float]) -> dict[str, list[float]]:
    """``measure(way, extra arguments)`` each way per round, the first way changing every round."""
    results: dict[str, list[float]] = {"with": [], "without": []}
    for r in range(rounds):
        for name, extra in setup.ways(r % 2 == 0):
            results[name].append(measure(name, extra))
    return results


def ratio_line(label: str, results: dict[str, list[float]], unit: str, scale: float) -> str:
    ratios = [a / b for a, b in zip(results["with"], results["without"], strict=True)]
    q1, _median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return (
        f"  {label:<28} with {statistics.median(results['with']) * scale:9.1f} {unit}  "
        f"without {statistics.median(results['without']) * scale:9.1f} {unit}  "
        f"ratio median {statistics.median(ratios):.4f} (IQR {q1:.4f}-{q3:.4f}, min {min(ratios):.4f}, "
        f"max {max(ratios):.4f})"
    )


def measure_setup(root: Path, setup: Setup, args: argparse.Namespace) -> None:
    child_run(root, setup, setup.with_plugin)  # write the bytecode, warm the file cache
    child_run(root, setup, setup.without)
    print(f"{setup.name}:")
    wall: dict[str, list[float]] = {"with": [], "without": []}

    def fresh(name: str, extra: Sequence[str]) -> float:
        spent, waited = child_run(root, setup, extra)
        wall[name].append(waited)
        return spent

    cpu = alternate(args.rounds, setup, fresh)
    print(ratio_line(f"process CPU ({args.rounds} rounds)", cpu, "ms", 1000))
    print(ratio_line(f"process wall ({args.rounds} rounds)", wall, "ms", 1000))
    if setup.name == "bare" and args.in_process:
        sys.path.insert(0, str(root))  # where -p finds the empty module, as python -m finds it in the cwd
        in_process_run(root, setup, setup.with_plugin)  # the test modules are imported once, here
        hooks = alternate(args.in_process, setup, lambda _name, extra: in_process_run(root, setup, extra))
        print(ratio_line(f"in-process CPU ({args.in_process} rounds)", hooks, "ms", 1000))
        per_test = (statistics.median(hooks["with"]) - statistics.median(hooks["without"])) / args.tests * 1e6
        print(f"  {'':<28} difference per collected test: {per_test:.2f} us")
    if args.callgrind:
        counted = alternate(args.callgrind, setup, lambda _name, extra: float(instructions(root, setup, extra)))
        print(ratio_line(f"instructions ({args.callgrind} each)", counted, "M", 1e-6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=21, help="rounds of fresh processes per setup")
    parser.add_argument("--in-process", type=int, default=9, help="rounds of in-process collections (bare setup)")
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--callgrind", type=int, nargs="?", const=1, default=0, help="runs each way under valgrind")
    parser.add_argument("--no-bytecode", action="store_true", help="compile every module in every process")
    args = parser.parse_args()
    if args.callgrind and shutil.which("valgrind") is None:
        parser.error("--callgrind needs valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "suite"
        root.mkdir()
        write_suite(root, args.tests)
        chosen = setups(None if args.no_bytecode else Path(tmp) / "pycache")
        print(
            f"{args.tests} trivial tests; ratio = with the plugin / without, per round; "
            f"bytecode {'compiled every time' if args.no_bytecode else 'cached'}"
        )
        imports = [plugin_import_ms(chosen[1]) for _ in range(8)][1:]  # the first one writes the bytecode
        print(
            f"plugin import after pytest (-X importtime, 7 runs): median {statistics.median(imports):.1f} ms "
            f"(min {min(imports):.1f}, max {max(imports):.1f})"
        )
        for setup in chosen:
            measure_setup(root, setup, args)


if __name__ == "__main__":
    main()
