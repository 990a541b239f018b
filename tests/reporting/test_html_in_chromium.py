"""The pytest-html report as a person sees it: rendered by headless Chromium after pytest-html's JavaScript ran."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def rendered_dom(browser: str, page, profile) -> str:
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_the_self_contained_report_shows_the_columns_a_chart_and_the_total(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator, tmp_path
):
    browser = chromium()
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    pytester.makepyfile("""
        def test_gpu(ssh_session, dumont_phase):
            with dumont_phase("create file"):
                ssh_session.run("echo hi > /workspace/f", hide=True)
        def test_cpu():
            pass
    """)
    result = pytester.runpytest(
        "--dumont-mode=emulator", f"--dumont-api-url={vast_emulator.url}", "--html=r.html", "--self-contained-html"
    )
    result.assert_outcomes(passed=2)
    dom = rendered_dom(browser, pytester.path / "r.html", tmp_path / "profile")
    headers = re.findall(r'<th class="sortable[^"]*" data-column-type="(dumont_\w+)">([^<]*)</th>', dom)
    assert headers == [
        ("dumont_gpu", "GPU"),
        ("dumont_dph", "$/h"),
        ("dumont_provision", "Provision (s)"),
        ("dumont_cost", "Cost ($)"),
    ]
    # The rows pytest-html's JavaScript built from its data: the GPU test's row carries the GPU, the other none.
    gpu_cells = re.findall(r'<td class="col-dumont_gpu">([^<]*)</td>', dom)
    assert sorted(gpu_cells) == ["", "RTX 4090"]
    # A chart in the summary, and one in the GPU test's extra; the session total in words.
    assert dom.count('<svg xmlns="http://www.w3.org/2000/svg" class="dumont-chart"') >= 2
    assert re.search(r'class="dumont-total">total: <b>\$0\.\d+</b> billed estimate', dom)
    assert "all instances destroyed" in dom and "create file" in dom


# Measured by Chromium's own layout, written into the page before --dump-dom reads it: each chart text's box against
# its SVG's box, the phase tables' cost cells, the timeline's stretches.
MEASURE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const clipped = [];
  document.querySelectorAll("svg.dumont-chart, svg.dumont-timeline-chart").forEach((svg) => {
    const frame = svg.getBoundingClientRect();
    if (!frame.width) return;  // a collapsed extra: not on screen
    svg.querySelectorAll("text").forEach((t) => {
      const box = t.getBoundingClientRect();
      if (box.left < frame.left - 0.5 || box.right > frame.right + 0.5) clipped.push(t.textContent);
    });
  });
  const charts = [...document.querySelectorAll("svg.dumont-chart")].filter((s) => s.getBoundingClientRect().width);
  const out = document.createElement("pre");
  out.id = "dumont-measured";
  out.textContent = JSON.stringify({
    clipped,
    charts: charts.length,
    timelines: document.querySelectorAll("svg.dumont-timeline-chart rect.dumont-status").length,
    costCells: [...document.querySelectorAll("table.dumont-phases tbody tr")].map((r) => r.cells[4].innerText),
    cards: [...document.querySelectorAll(".dumont-card")].map((c) => c.innerText.replace(/\\s+/g, " ")),
    total: document.querySelector(".dumont-total b").innerText,
    costColumn: [...document.querySelectorAll("td.col-dumont_cost")].map((c) => c.innerText.trim()),
  });
  document.body.appendChild(out);
}, 300));
</script>
"""

NESTED_JOURNEY = """
    def test_first(ssh_session, dumont_phase):
        with dumont_phase("write a long-named file under a nested directory"):
            ssh_session.run(
                "mkdir -p /workspace/a/b/c/d/e/f/g && printf 'Dumont Cloud Failover Test Timestamp: 29441924' "
                "> /workspace/a/f",
                hide=True,
            )
            with dumont_phase("read it back"):
                ssh_session.run("cat /workspace/a/f", hide=True)

    def test_rented(dumont_instance_factory):
        gpu = dumont_instance_factory()
        dumont_instance_factory.stop(gpu)
        dumont_instance_factory.start(gpu)
        gpu.connection.run("true", hide=True)
"""


def test_what_a_person_sees_styled_summary_charts_that_fit_a_timeline_and_costs_with_digits(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator, tmp_path
):
    browser = chromium()
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    pytester.makepyfile(NESTED_JOURNEY)
    result = pytester.runpytest(
        "--dumont-mode=emulator", f"--dumont-api-url={vast_emulator.url}", "--dumont-prewarm=off", "-p",
        "no:randomly", "--html=r.html", "--self-contained-html", "-o", "render_collapsed=never",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    page = pytester.path / "measured.html"
    page.write_text((pytester.path / "r.html").read_text().replace("</body>", MEASURE + "</body>"))
    dom = rendered_dom(browser, page, tmp_path / "profile")
    measured = json.loads(html.unescape(re.search(r'<pre id="dumont-measured">(.*?)</pre>', dom, re.S).group(1)))
    assert measured["clipped"] == []  # no chart text runs past its chart, on either side
    assert measured["charts"] >= 3  # one per instance in the summary (2), one in the GPU test's extra
    assert measured["timelines"] >= 3  # the status stretches drawn on the time axis
    assert measured["costCells"] and all(c.startswith("$") for c in measured["costCells"])
    assert measured["cards"][0].endswith("billed estimate") and measured["cards"][0].startswith(measured["total"])
    costs = [c for c in measured["costColumn"] if c]
    # Both tests' rows: the one on vast_gpu and the one that rented with the factory.
    assert len(costs) == 2 and all(re.fullmatch(r"\$0\.0*[1-9]\d{1,2}", c) for c in costs), costs
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'shot'}",
         "--hide-scrollbars", "--window-size=1300,2400", "--virtual-time-budget=5000",
         f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
