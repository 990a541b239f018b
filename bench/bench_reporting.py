"""What the reporting costs: its share of the HTML report's time for N GPU tests, and nothing without GPU tests.

One run of N tests sharing one emulated instance, with ``--html``: the time spent in pytest-dumont's reporting
(per-test numbers and extras, row cells, the session document, the summary section) beside the time spent in
pytest-html's own hooks (minus our summary, which it calls), after a first run has imported both sides' modules.
Then N tests without a GPU: the reporting modules
loaded (expected: none) and the run's time with the plugin against ``-p no:dumont``, side by side.
Usage: ``python bench/bench_reporting.py [-n 500]``. Nothing is asserted: read the ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.emulator import Emulator

SPENT: dict[str, float] = defaultdict(float)
ROUNDS = 7  # end-to-end runs of about a second each: the best of several is what the machine can do


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


def instrument() -> None:
    from pytest_html.basereport import BaseReport

    from pytest_dumont.reporting import html, per_test, session_end

    timed(per_test, "on_call_report", "dumont_per_test")
    timed(html, "row_cells", "dumont_rows")
    timed(session_end, "controller_finish", "dumont_finish")
    timed(html, "summary", "dumont_summary")  # called from inside pytest-html's sessionfinish
    timed(BaseReport, "pytest_runtest_logreport", "html")
    timed(BaseReport, "pytest_sessionfinish", "html")


def run(workdir: Path, args: list[str]) -> float:
    started = time.perf_counter()
    code = pytest.main([str(workdir), "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *args])
    assert code == 0, code
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--tests", type=int, default=500)
    args = parser.parse_args()
    n = args.tests
    instrument()
    with tempfile.TemporaryDirectory() as tmp, Emulator() as emulator:
        gpu = Path(tmp, "gpu")
        gpu.mkdir()
        (gpu / "test_gpu.py").write_text("".join(f"def test_{i}(vast_gpu):\n    pass\n" for i in range(n)))
        os.environ["VAST_API_KEY"] = emulator.api_key
        html = ["--html", str(Path(tmp, "r.html")), "--self-contained-html"]
        # A first run imports every module on both sides; the measured run pays only per-run work.
        run(gpu, ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", *html])
        SPENT.clear()
        total = run(gpu, ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", *html])
        ours = sum(v for k, v in SPENT.items() if k.startswith("dumont"))
        print("milliseconds by bucket:", {k: round(v * 1000, 1) for k, v in SPENT.items()})
        theirs = SPENT["html"] - SPENT["dumont_summary"]
        print(
            f"{n} GPU tests, --html: run {total:.2f} s; pytest-html's own hooks {theirs * 1000:.1f} ms; "
            f"pytest-dumont reporting {ours * 1000:.1f} ms = {ours / theirs * 100:.1f}% of pytest-html's time"
        )

        api = ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}"]
        walls: dict[str, list[float]] = {"html": [], "none": []}
        for _ in range(ROUNDS):
            walls["html"].append(run(gpu, [*api, "--html", str(Path(tmp, "r2.html")), "--self-contained-html"]))
            walls["none"].append(run(gpu, api))
        html_cost = min(walls["html"]) - min(walls["none"])
        print(
            f"{n} GPU tests end to end, best of {ROUNDS}: {min(walls['html']):.2f} s with --html, "
            f"{min(walls['none']):.2f} s without: pytest-html adds {html_cost * 1000:.0f} ms; "
            f"our reporting {ours * 1000:.1f} ms is "
            f"{ours / html_cost * 100:.1f}% of that"
        )

        plain = Path(tmp, "plain")
        plain.mkdir()
        (plain / "test_plain.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(n)))
        before = {m for m in sys.modules if m.startswith("pytest_dumont.reporting.")}
        times: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(3):
            times["with"].append(run(plain, []))
            times["without"].append(run(plain, ["-p", "no:dumont"]))
        loaded = {m for m in sys.modules if m.startswith("pytest_dumont.reporting.")} - before
        best = {k: min(v) for k, v in times.items()}
        print(
            f"{n} plain tests: reporting modules newly loaded: {sorted(loaded) or 'none'}; best of 3: "
            f"{best['with']:.3f} s with the plugin, {best['without']:.3f} s with -p no:dumont "
            f"(ratio {best['with'] / best['without']:.2f})"
        )


if __name__ == "__main__":
    main()
