"""Scenario figures as report data: a test's ``scenario_figures`` reach the JSON report, the pytest-html report (its
extra and the summary) and the Markdown summary, under xdist too, and ``dumont report merge`` keeps them."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_cost_document import doc_with, seed_record

from pytest_dumont.reporting import document, jsonreport, markdown
from pytest_dumont.reporting import html as html_report

# A failover-like scenario: figures recorded through the scenarios' own fixture while the test holds an instance.
SCENARIO = """
    def test_failover_figures(dumont_instance_factory, scenario_figures):
        dumont_instance_factory()
        scenario_figures("failover total", 3.25, "s")
        scenario_figures("  restore", 1.5, "s")
        scenario_figures("snapshot up (instance->store)", 12.5, "MB/s")
        scenario_figures("never measured", float("nan"), "s")

    def test_plain_gpu(vast_gpu):
        pass
"""
FIGURES = [
    {"name": "failover total", "value": 3.25, "unit": "s"},
    {"name": "  restore", "value": 1.5, "unit": "s"},
    {"name": "snapshot up (instance->store)", "value": 12.5, "unit": "MB/s"},
    {"name": "never measured", "value": None, "unit": "s"},  # NaN is not JSON
]


def run_scenario(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, emulator: Any, *extra: str):
    pytester.makeconftest('pytest_plugins = ["pytest_dumont.scenarios.conftest"]\n')
    pytester.makepyfile(SCENARIO)
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    for name in ("GITHUB_ACTIONS", "DUMONT_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    result = pytester.runpytest(
        "--dumont-mode=emulator",
        f"--dumont-api-url={emulator.url}",
        "--dumont-prewarm=off",
        "-p",
        "no:randomly",
        "--dumont-json=r.json",
        *extra,
    )
    result.assert_outcomes(passed=2)
    return result, json.loads((pytester.path / "r.json").read_text())


def html_data(path: Path) -> dict[str, Any]:
    """The test data pytest-html's page builds its table from (a JSON blob in an attribute)."""
    blob = re.search(r'data-jsonblob="([^"]*)"', path.read_text())
    assert blob is not None
    data: dict[str, Any] = json.loads(html.unescape(blob.group(1)))
    return data


def test_a_tests_figures_reach_the_json_the_html_report_and_the_markdown_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    result, doc = run_scenario(pytester, monkeypatch, vast_emulator, "--html=r.html", "--self-contained-html")
    (entry,) = doc["scenario_figures"]
    assert entry["nodeid"].endswith("::test_failover_figures") and entry["outcome"] == "passed"
    assert entry["figures"] == FIGURES
    # The factory's test is in the cost by test with its outcome, as a vast_gpu test is.
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in doc["tests"]}
    assert outcomes == {"test_failover_figures": "passed", "test_plain_gpu": "passed"}
    result.stdout.fnmatch_lines(["*- dumont scenarios -*", "  failover total * 3.250 s"])  # the terminal block stays

    page = (pytester.path / "r.html").read_text()
    summary = page[page.index("<h3>scenario figures</h3>") :]
    assert "test_failover_figures</code> (passed)" in summary
    assert "snapshot up (instance-&gt;store)</td>" in summary and ">12.500</td><td>MB/s</td>" in summary
    assert ">n/a</td>" in summary
    assert 'padding-left:1.4em">restore</td>' in summary  # a part of the figure above it, indented
    tests = html_data(pytester.path / "r.html")["tests"]
    (row,) = next(rows for nodeid, rows in tests.items() if nodeid.endswith("test_failover_figures"))
    extras = [e["content"] for e in row["extras"]]
    assert any("dumont-figures" in e and ">3.250</td>" in e for e in extras)

    text = (pytester.path / "summary.md").read_text()
    assert "### scenario figures" in text and "test_failover_figures` (passed)" in text
    for line in ("| failover total | 3.250 | s |", "| &emsp;restore | 1.500 | s |", "| never measured | n/a | s |"):
        assert line in text
    assert "| snapshot up (instance->store) | 12.500 | MB/s |" in text


def test_every_row_pytest_html_shows_has_the_four_dumont_cells(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    """Passed setup and teardown rows get no cells (pytest-html drops them); every row it keeps has all of them."""
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup fails")

        def test_gpu(vast_gpu):
            pass

        def test_cpu():
            pass

        def test_setup_error(broken):
            pass
    """)
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    result = pytester.runpytest(
        "--dumont-mode=emulator", f"--dumont-api-url={vast_emulator.url}", "-p", "no:randomly", "--html=r.html"
    )
    result.assert_outcomes(passed=2, errors=1)
    tests = html_data(pytester.path / "r.html")["tests"]
    rows = [row for shown in tests.values() for row in shown]
    assert len(rows) == 3
    for row in rows:
        cells = row["resultsTableRow"]
        assert [c for c in cells if "class=col-dumont_" in c] and len(cells) == 8, cells
    (gpu,) = tests[next(k for k in tests if k.endswith("test_gpu"))]
    assert gpu["dumont_gpu"] == "RTX 4090" and gpu["dumont_cost"].strip().startswith("$0.0")


def test_under_xdist_a_workers_figures_reach_the_controllers_reports(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    _, doc = run_scenario(pytester, monkeypatch, vast_emulator, "-n", "2", "-p", "no:benchmark")
    (entry,) = doc["scenario_figures"]
    assert entry["outcome"] == "passed" and entry["figures"] == FIGURES
    text = (pytester.path / "summary.md").read_text()
    assert text.count("### scenario figures") == 1 and "| failover total | 3.250 | s |" in text


def figures_doc(nodeid: str, value: float) -> dict[str, Any]:
    figures = {nodeid: [{"name": "tokens per second", "value": value, "unit": "tok/s"}]}
    return document.build(
        [document.instance_entry(seed_record(), 100.0)], {nodeid: "passed"}, session={"id": nodeid}, figures=figures
    )


def test_merge_keeps_every_reports_figures_and_reads_reports_written_before_them(tmp_path):
    older = doc_with(seed_record())
    del older["scenario_figures"]  # a report written before scenario figures were reported
    docs = [figures_doc("a::test_inference", 41.5), older, figures_doc("b::test_inference", 43.0)]
    for i, doc in enumerate(docs):
        (tmp_path / f"{i}.json").write_text(json.dumps(doc))
    assert markdown.render(jsonreport.read(tmp_path / "1.json"))  # the older report still reads and renders
    done = subprocess.run(
        [sys.executable, "-m", "pytest_dumont.cli", "report", "merge", "0.json", "1.json", "2.json", "-o", "all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [(e["nodeid"], e["figures"][0]["value"]) for e in merged["scenario_figures"]] == [
        ("a::test_inference", 41.5),
        ("b::test_inference", 43.0),
    ]
    text = (tmp_path / "all.md").read_text()
    assert "`a::test_inference` (passed)" in text and "| tokens per second | 43.000 | tok/s |" in text
    assert "b::test_inference</code> (passed)" in (tmp_path / "all.html").read_text()
    assert jsonreport.merge([older])["scenario_figures"] == []


def test_a_report_without_figures_shows_no_figures_block():
    doc = doc_with(seed_record())
    assert doc["scenario_figures"] == []
    assert "scenario figures" not in markdown.render(doc)
    assert "scenario figures" not in "".join(html_report.summary(doc))


def test_a_session_that_rented_nothing_still_shows_its_figures_in_the_html_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makeconftest('pytest_plugins = ["pytest_dumont.scenarios.conftest"]\n')
    pytester.makepyfile("""
        def test_figures_only(scenario_figures):
            scenario_figures("tokens per second", 41.5, "tok/s")
    """)
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    result = pytester.runpytest(
        "--dumont-mode=emulator", f"--dumont-api-url={vast_emulator.url}", "--html=r.html", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1)
    page = (pytester.path / "r.html").read_text()
    summary = page[page.index('class="additional-summary prefix"') : page.index('class="run-count"')]
    assert "no instance was rented" in summary and "tokens per second" in summary and "41.500" in summary
    assert "billed estimate" not in summary  # no costs, leak check or projections for a session that rented nothing
