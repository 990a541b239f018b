"""What the reporting costs: its share of the HTML report's time for N GPU tests, and nothing without GPU tests.

N tests sharing one emulated instance, with ``--html``, after a first run has imported every module. The emulator
runs in its own process, so its threads do not take this one's GIL inside a timed hook. Each round is three runs:

- **A**, as users run it. Timed: pytest-dumont's reporting hooks (a test's numbers when its call ends, and inside
  that its cells and extras; the row and header hooks, blank cells too; the session's end: document, JSON, GitHub;
  the summary hook) and pytest-html's own hooks (configure, sessionstart, logreport, sessionfinish...; minus ours,
  which it calls).
- **B**, our pytest-html hooks doing nothing: pytest-html's own hooks for these tests, without our part.
- **C**, as B plus a plugin with four constant sortable columns: the least that four sortable columns can cost,
  since pytest-html runs two regular expressions over every sortable cell of every row and carries each cell twice,
  JSON- and HTML-escaped, in its page.

*Our part of the HTML report* is what only ``--html`` makes us do (cells and extras, the row and summary hooks) plus
what pytest-html spends on it (A - B). It is set against pytest-html's own time two ways: its hooks (B), and what
``--html`` adds to the run end to end (the median difference of pairs of runs with B's set-up and without
``--html``; its hooks are less than half of that). A test's numbers and the session's document are taken with or
without ``--html`` (the terminal table and the JSON report need them): they are shown on their own. Medians over the
rounds: the machine is shared and noisy. Both makereport hook wrappers are left untimed (timing a generator costs
more than what they do): ours only checks the test's fixture names around ``on_call_report``, which is timed;
pytest-html's merges extras lists.

Then N tests without a GPU: the reporting modules loaded (expected: none) and the run's time with the plugin against
``-p no:dumont``, side by side. Usage:
``python bench/bench_reporting.py [-n 500] [--rounds 7] [--printed-lines 20] [--cpu-time]`` (``--printed-lines``:
each test prints that many lines, as one that shows ``nvidia-smi`` does; ``--cpu-time``: the hooks timed in this
thread's CPU time). Nothing is asserted: read the ratios. To compare two commits, run this file from one checkout
with ``PYTHONPATH`` set to each checkout in turn, in one virtual environment (so that the same pytest plugins are
loaded), alternating them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
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
from standalone_emulator import start_emulator

SPENT: dict[str, float] = defaultdict(float)
WALL_ROUNDS = 15  # pairs of end-to-end runs of about a second each: their median difference is pytest-html's time
OURS_IN_HTML = ("dumont_rows", "dumont_summary")  # our hooks pytest-html calls from inside its own
SWITCH = {"html_hooks_off": False}  # run B: our pytest-html hooks return at once
NVIDIA_SMI_LINE = "| 0  NVIDIA GeForce RTX 4090   On | 00000000:01:00.0 Off |  30%  34C  P8  21W / 450W |\n"


CLOCK = {"hooks": time.perf_counter}  # --cpu-time: this thread's CPU time, which other processes' load moves less


def timed(owner: Any, name: str, bucket: str) -> None:
    real: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        clock = CLOCK["hooks"]
        started = clock()
        try:
            return real(*args, **kwargs)
        finally:
            SPENT[bucket] += clock() - started

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
    for name in ("row_cells", "extra_for_test", "figures_extra", "_add_extras"):  # the HTML part of it
        timed(per_test, name, "cells")
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


class FourConstantColumns:
    """The least any plugin with four sortable pytest-html columns can cost: constant cells, computed once."""

    CELLS = [f"<td class=col-c{i}>      0.0000</td>" for i in range(4)]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.extend(f'<th class="sortable" data-column-type="c{i}">C{i}</th>' for i in range(4))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if report.when == "call" or report.outcome != "passed":
            cells.extend(self.CELLS)


def run(workdir: Path, args: list[str], plugins: tuple[object, ...] = ()) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' own output would bury the figures
        code = pytest.main(
            [str(workdir), "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-W", "ignore", *args], plugins=plugins
        )
    assert code == 0, code
    return time.perf_counter() - started


def timed_run(
    workdir: Path, args: list[str], *, html_hooks_off: bool, plugins: tuple[object, ...] = ()
) -> tuple[float, float, dict[str, float]]:
    """One run: (our hooks, pytest-html's own hooks, the buckets), in seconds."""
    SPENT.clear()
    SWITCH["html_hooks_off"] = html_hooks_off
    try:
        run(workdir, args, plugins)
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
    parser.add_argument("--rounds", type=int, default=7, help="rounds of runs A, B and C (medians are printed)")
    parser.add_argument(
        "--printed-lines", type=int, default=0, help="lines each test prints, as a test that shows nvidia-smi does"
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the hooks in this thread's CPU time, not wall time: on a shared machine, other processes' load "
        "moves it less (it still moves: caches are shared)",
    )
    args = parser.parse_args()
    if args.cpu_time:
        CLOCK["hooks"] = time.thread_time
    instrument()
    proc, url, key = start_emulator()
    try:
        measure(args.tests, args.rounds, url, key, args.printed_lines)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def measure(n: int, rounds: int, url: str, key: str, printed_lines: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gpu = Path(tmp, "gpu")
        gpu.mkdir()
        # An empty test is the worst case for the ratio; one that prints gives pytest-html its logs to handle.
        body = f"    print({NVIDIA_SMI_LINE!r} * {printed_lines})\n" if printed_lines else "    pass\n"
        (gpu / "test_gpu.py").write_text("".join(f"def test_{i}(vast_gpu):\n{body}" for i in range(n)))
        os.environ["VAST_API_KEY"] = key
        api = ["--dumont-mode=emulator", f"--dumont-api-url={url}"]
        html = [*api, "--html", str(Path(tmp, "r.html")), "--self-contained-html"]
        constant = (FourConstantColumns(),)
        run(gpu, html)  # imports every module on both sides: the measured runs pay only per-run work
        run(gpu, html, constant)
        got: dict[str, list[float]] = defaultdict(list)
        for _ in range(rounds):
            ours_a, theirs_a, buckets = timed_run(gpu, html, html_hooks_off=False)
            _, theirs_b, _ = timed_run(gpu, html, html_hooks_off=True)
            _, theirs_c, _ = timed_run(gpu, html, html_hooks_off=True, plugins=constant)
            html_part = buckets["cells"] + buckets["dumont_rows"] + buckets["dumont_summary"] + theirs_a - theirs_b
            for name, value in [
                ("cells", buckets["cells"]),
                ("rows", buckets["dumont_rows"]),
                ("summary", buckets["dumont_summary"]),
                ("ours", ours_a),
                ("A", theirs_a),
                ("B", theirs_b),
                ("C", theirs_c),
                ("html_part", html_part),
                ("numbers", ours_a - buckets["cells"] - buckets["dumont_rows"] - buckets["dumont_summary"]),
                ("part/B", html_part / theirs_b),
                ("floor/B", (theirs_c - theirs_b) / theirs_b),
                ("A-C", theirs_a - theirs_c),  # pytest-html's work on our part beyond the floor, paired
                ("all/B", (ours_a + theirs_a - theirs_b) / theirs_b),
            ]:
                got[name].append(value)
            print(
                "ms:",
                {k: round(v * 1000, 1) for k, v in sorted(buckets.items())},
                f"| pytest-html A {theirs_a * 1000:.1f}, B {theirs_b * 1000:.1f}, C {theirs_c * 1000:.1f}",
                f"| our HTML part {html_part / theirs_b * 100:.1f}% of B, all of ours {got['all/B'][-1] * 100:.1f}%",
            )
        walls: dict[str, list[float]] = {"html": [], "none": []}
        SWITCH["html_hooks_off"] = True  # pytest-html alone: our cells, rows and summary left out
        try:
            for _ in range(WALL_ROUNDS):
                walls["html"].append(run(gpu, html))
                walls["none"].append(run(gpu, api))
        finally:
            SWITCH["html_hooks_off"] = False
        e2e = statistics.median(h - o for h, o in zip(walls["html"], walls["none"], strict=True))
        b_ms, part_ms = median_ms(got["B"]), median_ms(got["html_part"])
        printed = f", each printing {printed_lines} lines" if printed_lines else ""
        print(
            f"\n{n} GPU tests{printed}, --html, medians of {rounds} rounds (each: A as users run it, B with our "
            "pytest-html hooks off, C with four constant sortable columns instead of ours):\n"
            f"  pytest-html's own time: its hooks {b_ms:.1f} ms (B); end to end, --html adds {e2e * 1000:.0f} ms "
            f"to the run (median of {WALL_ROUNDS} pairs of runs, {min(walls['none']):.2f} s without it)\n"
            f"  our part of the HTML report: {part_ms:.1f} ms (cells and extras {median_ms(got['cells']):.1f}, "
            f"rows {median_ms(got['rows']):.1f}, summary {median_ms(got['summary']):.1f}, pytest-html's work on "
            f"our part A - B {median_ms(got['A']) - b_ms:.1f}) = {statistics.median(got['part/B']) * 100:.1f}% of "
            f"its hooks, {part_ms / (e2e * 1000) * 100:.1f}% of its time end to end\n"
            f"  the floor, four constant sortable columns: pytest-html's work on them C - B "
            f"{median_ms(got['C']) - b_ms:.1f} ms = {statistics.median(got['floor/B']) * 100:.1f}% of its hooks; "
            f"its work on our part beyond that, paired A - C: {median_ms(got['A-C']):+.1f} ms\n"
            f"  our numbers and the session's document, taken with or without --html: "
            f"{median_ms(got['numbers']):.1f} ms; all of ours with pytest-html's work on our part: "
            f"{statistics.median(got['all/B']) * 100:.1f}% of its hooks"
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
