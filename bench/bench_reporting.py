"""What the reporting costs: its share of the HTML report's time for N GPU tests, and nothing without GPU tests.

N tests sharing one emulated instance, with ``--html``, after a first run has imported both sides' modules. The
emulator runs in its own process, so its threads do not take this one's GIL inside a timed hook. Each round is a
pair of runs, one after the other:

- **A**, as users run it: the time in pytest-dumont's reporting hooks (per-test numbers, cells and extras; the row
  and header hooks, blank cells too; the session's end: document, JSON, GitHub; the summary hook) and in
  pytest-html's own hooks (configure, sessionstart, logreport, sessionfinish...; minus ours, which it calls).
- **B**, the same run with our pytest-html hooks doing nothing: pytest-html's own time for these tests without our
  columns and summary.

Two ratios: *hooks* = our hooks / pytest-html's hooks in A (stable, but blind to what pytest-html itself spends on
our cells: it parses every sortable cell of every row with regular expressions); *added* = (our hooks in A +
pytest-html's hooks in A - pytest-html's hooks in B) / pytest-html's hooks in B: what building our part of the
report adds to pytest-html's own time, the issue's target. Medians over the rounds: the machine is shared and noisy.
Both makereport hook wrappers are left untimed (timing a generator costs more than what they do): ours only checks
the test's fixture names around ``on_call_report``, which is timed; pytest-html's merges extras lists.

Then the same A runs end to end against runs without ``--html``, and N tests without a GPU: the reporting modules
loaded (expected: none) and the run's time with the plugin against ``-p no:dumont``, side by side.
Usage: ``python bench/bench_reporting.py [-n 500] [--rounds 7]``. Nothing is asserted: read the ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SPENT: dict[str, float] = defaultdict(float)
WALL_ROUNDS = 7  # end-to-end runs of about a second each: the best of several is what the machine can do
OURS_IN_HTML = ("dumont_rows", "dumont_summary")  # our hooks pytest-html calls from inside its own
SWITCH = {"html_hooks_off": False}  # run B: our pytest-html hooks return at once


def timed(owner: Any, name: str, bucket: str) -> None:
    real: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            SPENT[bucket] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def switchable(owner: Any, name: str) -> None:
    real: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return None if SWITCH["html_hooks_off"] else real(*args, **kwargs)

    setattr(owner, name, wrapper)


def instrument() -> None:
    """Wrap both plugins' hooks before pytest registers their modules, so that pytest calls the wrapped ones."""
    import pytest_html.plugin as html_plugin
    from pytest_html.basereport import BaseReport

    from pytest_dumont import plugin
    from pytest_dumont.reporting import per_test

    timed(per_test, "on_call_report", "dumont_per_test")
    timed(plugin, "pytest_html_results_table_header", "dumont_rows")
    timed(plugin, "pytest_html_results_table_row", "dumont_rows")  # every row, blank cells too
    timed(plugin, "pytest_sessionfinish", "dumont_finish")
    timed(plugin, "pytest_html_results_summary", "dumont_summary")
    for name in ("pytest_html_results_table_header", "pytest_html_results_table_row", "pytest_html_results_summary"):
        switchable(plugin, name)  # outside the timing: the switch is not our hooks' cost
    timed(BaseReport, "pytest_runtest_logreport", "html")
    timed(BaseReport, "pytest_sessionfinish", "html")
    for name in ("pytest_sessionstart", "pytest_collectreport", "pytest_collection_finish", "pytest_terminal_summary"):
        timed(BaseReport, name, "html")
    timed(html_plugin, "pytest_configure", "html")
    timed(html_plugin, "pytest_unconfigure", "html")


def start_emulator() -> tuple[subprocess.Popen[str], str, str]:
    """A standalone emulator: its URL and API key are the first two lines it prints."""
    args = [sys.executable, "-m", "pytest_dumont.emulator", "--port", "0", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[-1], proc.stdout.readline().split()[-1]


def run(workdir: Path, args: list[str]) -> float:
    started = time.perf_counter()
    code = pytest.main([str(workdir), "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *args])
    assert code == 0, code
    return time.perf_counter() - started


def timed_run(workdir: Path, args: list[str], *, html_hooks_off: bool) -> tuple[float, float, dict[str, float]]:
    """One run: (our hooks, pytest-html's own hooks, the buckets), in seconds."""
    SPENT.clear()
    SWITCH["html_hooks_off"] = html_hooks_off
    try:
        run(workdir, args)
    finally:
        SWITCH["html_hooks_off"] = False
    ours = sum(v for k, v in SPENT.items() if k.startswith("dumont"))
    theirs = SPENT["html"] - sum(SPENT[k] for k in OURS_IN_HTML)
    return ours, theirs, dict(SPENT)


def reporting_modules_loaded(workdir: Path, report: Path) -> str:
    """In a fresh process (this one has loaded them all): the reporting modules a run without GPU tests imports."""
    code = (
        "import sys, pytest; pytest.main([sys.argv[1], '-q', '-p', 'no:randomly', '-p', 'no:cacheprovider', "
        "'--html', sys.argv[2]]); print(','.join(sorted(m for m in sys.modules "
        "if m.startswith('pytest_dumont.reporting.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(workdir), str(report)], capture_output=True, text=True)
    return done.stdout.splitlines()[-1] if done.stdout.strip() else f"(failed: {done.stderr.strip()[-200:]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--tests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7, help="pairs of runs, A and B (medians are printed)")
    args = parser.parse_args()
    instrument()
    proc, url, key = start_emulator()
    try:
        measure(args.tests, args.rounds, url, key)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(n: int, rounds: int, url: str, key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gpu = Path(tmp, "gpu")
        gpu.mkdir()
        (gpu / "test_gpu.py").write_text("".join(f"def test_{i}(vast_gpu):\n    pass\n" for i in range(n)))
        os.environ["VAST_API_KEY"] = key
        api = ["--dumont-mode=emulator", f"--dumont-api-url={url}"]
        html = [*api, "--html", str(Path(tmp, "r.html")), "--self-contained-html"]
        run(gpu, html)  # imports every module on both sides: the measured runs pay only per-run work
        ours, theirs, theirs_alone, added = [], [], [], []
        for _ in range(rounds):
            ours_a, theirs_a, buckets = timed_run(gpu, html, html_hooks_off=False)
            _, theirs_b, _ = timed_run(gpu, html, html_hooks_off=True)
            ours.append(ours_a)
            theirs.append(theirs_a)
            theirs_alone.append(theirs_b)
            added.append(ours_a + theirs_a - theirs_b)
            print(
                "ms:",
                {k: round(v * 1000, 1) for k, v in sorted(buckets.items())},
                f"| pytest-html A {theirs_a * 1000:.1f}, B {theirs_b * 1000:.1f}",
                f"| hooks {ours_a / theirs_a * 100:.1f}%, added {added[-1] / theirs_b * 100:.1f}%",
            )
        med = {name: statistics.median(v) for name, v in [("ours", ours), ("A", theirs), ("B", theirs_alone)]}
        hooks = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        share = statistics.median(a / b for a, b in zip(added, theirs_alone, strict=True))
        print(
            f"{n} GPU tests, --html, medians of {rounds} rounds: pytest-dumont's hooks {med['ours'] * 1000:.1f} ms, "
            f"pytest-html's hooks {med['A'] * 1000:.1f} ms with our part, {med['B'] * 1000:.1f} ms without; "
            f"hooks ratio {hooks * 100:.1f}%; added {statistics.median(added) * 1000:.1f} ms = {share * 100:.1f}% "
            "of pytest-html's own time"
        )

        walls: dict[str, list[float]] = {"html": [], "none": []}
        for _ in range(WALL_ROUNDS):
            walls["html"].append(run(gpu, html))
            walls["none"].append(run(gpu, api))
        html_cost = min(walls["html"]) - min(walls["none"])
        print(
            f"{n} GPU tests end to end, best of {WALL_ROUNDS}: {min(walls['html']):.2f} s with --html, "
            f"{min(walls['none']):.2f} s without: --html adds {html_cost * 1000:.0f} ms (our hooks "
            f"{med['ours'] * 1000:.1f} ms of it)"
        )

        plain = Path(tmp, "plain")
        plain.mkdir()
        (plain / "test_plain.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(n)))
        loaded = reporting_modules_loaded(plain, Path(tmp, "plain.html"))
        times: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(3):
            times["with"].append(run(plain, []))
            times["without"].append(run(plain, ["-p", "no:dumont"]))
        best = {k: min(v) for k, v in times.items()}
        print(
            f"{n} plain tests: reporting modules loaded (fresh process, --html): {loaded or 'none'}; best of 3: "
            f"{best['with']:.3f} s with the plugin, {best['without']:.3f} s with -p no:dumont "
            f"(ratio {best['with'] / best['without']:.2f})"
        )


if __name__ == "__main__":
    main()
