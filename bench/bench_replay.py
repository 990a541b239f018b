"""Replaying the seed journey from the repository's cassettes, against the wall time it took when recorded.

Each round copies ``examples/seed_journey`` and ``cassettes/`` into a fresh directory and replays it, once in this
process (``pytest.main``: the session's wall time and each test body's) and once as a fresh ``python -m pytest``
(what a user waits for, interpreter start included). The recorded wall time is the replayed ledger's own: replay
shows the recorded durations, from the first search to the last confirmed destroy. The same two measures are then
taken for the scenario library (``pytest --pyargs pytest_dumont.scenarios``, seven rentals) from an empty directory.
Usage: ``python bench/bench_replay.py [-n 5]``. Nothing is asserted: read the medians and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.session.state import SESSION_KEY

REPO = Path(__file__).resolve().parents[1]


class Measure:
    """Collects the test bodies' durations and the replayed (recorded) session wall time."""

    def __init__(self) -> None:
        self.bodies: list[float] = []
        self.recorded_wall = 0.0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.bodies.append(report.duration)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        records = session.config.stash[SESSION_KEY].ledger.records()
        ends = [r.destroyed_at if r.destroyed_at is not None else r.created_at for r in records]
        self.recorded_wall = max(ends) - min(r.search_started_at for r in records)


def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="dumont-bench-replay-"))
    shutil.copy(REPO / "examples" / "seed_journey" / "test_seed_journey.py", path)
    shutil.copytree(REPO / "cassettes", path / "cassettes")
    return path


SCENARIOS = ["--pyargs", "pytest_dumont.scenarios"]


# This environment's third-party plugins that have nothing to do with replay; a lean environment has none of them.
UNRELATED_PLUGINS = ["-p", "no:hypothesispytest", "-p", "no:anyio", "-p", "no:benchmark"]


def in_process(path: Path, target: list[str] | None = None) -> tuple[float, Measure]:
    measure = Measure()
    os.chdir(path)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the report itself is not the point here
        code = pytest.main(
            ["-q", "-p", "no:xdist", "-p", "no:cacheprovider", "--import-mode=importlib", *(target or [str(path)])],
            plugins=[measure],
        )
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"replay failed with exit code {code}")
    return elapsed, measure


def bare_pytest_wall(extra: list[str] | None = None) -> float:
    """A fresh pytest run of one empty test, with the same plugins: the start-up cost replay cannot avoid."""
    path = Path(tempfile.mkdtemp(prefix="dumont-bench-bare-"))
    (path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    try:
        return subprocess_wall(path, extra=extra)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def subprocess_wall(path: Path, target: list[str] | None = None, extra: list[str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *(extra or [])]
        + (target or [str(path)]),
        cwd=path,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5, help="rounds")
    args = parser.parse_args(argv)
    sessions: list[float] = []
    bodies: list[float] = []
    cold: list[float] = []
    recorded: list[float] = []
    bare: list[float] = []
    lean: list[float] = []
    lean_bare: list[float] = []
    scenario_sessions: list[float] = []
    scenario_cold: list[float] = []
    scenario_recorded: list[float] = []
    here = Path.cwd()
    for _ in range(args.n):
        path = workdir()
        empty = Path(tempfile.mkdtemp(prefix="dumont-bench-scenarios-"))
        try:
            elapsed, measure = in_process(path)
            sessions.append(elapsed)
            bodies.append(sum(measure.bodies))
            recorded.append(measure.recorded_wall)
            cold.append(subprocess_wall(path))
            bare.append(bare_pytest_wall())
            lean.append(subprocess_wall(path, extra=UNRELATED_PLUGINS))
            lean_bare.append(bare_pytest_wall(UNRELATED_PLUGINS))
            elapsed, measure = in_process(empty, SCENARIOS)
            scenario_sessions.append(elapsed)
            scenario_recorded.append(measure.recorded_wall)
            scenario_cold.append(subprocess_wall(empty, SCENARIOS))
        finally:
            os.chdir(here)
            shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(empty, ignore_errors=True)
    wall = statistics.median(recorded)
    scenario_wall = statistics.median(scenario_recorded)
    rows: list[tuple[str, Any]] = [
        ("recorded wall time (search to confirmed destroy), s", f"{wall:.2f}"),
        ("replay, pytest session in process (median), s", f"{statistics.median(sessions):.3f}"),
        ("replay, fresh `python -m pytest` (median), s", f"{statistics.median(cold):.3f}"),
        ("a fresh pytest of one empty test, same plugins (median), s", f"{statistics.median(bare):.3f}"),
        ("ratio session / recorded wall", f"{statistics.median(sessions) / wall:.2%}"),
        ("ratio fresh process / recorded wall", f"{statistics.median(cold) / wall:.2%}"),
        ("replay, fresh process without hypothesis/anyio/benchmark, s", f"{statistics.median(lean):.3f}"),
        ("  the empty test the same way, s", f"{statistics.median(lean_bare):.3f}"),
        ("  ratio to recorded wall", f"{statistics.median(lean) / wall:.2%}"),
        ("the four test bodies together (median), s", f"{statistics.median(bodies):.4f}"),
        ("slowest round of test bodies, s", f"{max(bodies):.4f}"),
        ("scenario library: recorded wall time, s", f"{scenario_wall:.2f}"),
        ("scenario library: replay in process (median), s", f"{statistics.median(scenario_sessions):.3f}"),
        ("scenario library: replay, fresh process (median), s", f"{statistics.median(scenario_cold):.3f}"),
        ("scenario library: fresh process / recorded wall", f"{statistics.median(scenario_cold) / scenario_wall:.2%}"),
    ]
    for label, value in rows:
        print(f"{label:<56} {value}")


if __name__ == "__main__":
    main()
