"""The pytest-html report as a person sees it: rendered by headless Chromium after pytest-html's JavaScript ran."""

from __future__ import annotations

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
