"""``--dumont-check-secrets``: a run scans what it wrote, passes when clean, and fails naming the file on a hit."""

from __future__ import annotations

import pytest


def test_a_clean_run_says_so(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator):
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    pytester.makepyfile("def test_gpu(vast_gpu): pass\n")
    result = pytester.runpytest(
        "--dumont-mode=emulator",
        f"--dumont-api-url={vast_emulator.url}",
        "--dumont-check-secrets=on",
        "--html=report.html",
        "--self-contained-html",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["dumont check-secrets: no secret in the cassettes and reports of this run"])


def test_a_secret_in_a_written_report_fails_the_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    leaked = "vast-key-leaked-into-a-report-1234"
    monkeypatch.setenv("VAST_API_KEY", leaked)  # registered as this session's secret
    pytester.makepyfile(f"""
        def test_logs_the_key(record_property):
            record_property("oops", "{leaked}")
    """)
    result = pytester.runpytest("--dumont-check-secrets=on", "--junitxml=out.xml")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*dumont check-secrets: 1 secret(s) found*", "*out.xml:*: a secret this session knows"]
    )
    assert leaked not in result.stdout.str()


def test_off_by_default(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VAST_API_KEY", "vast-key-leaked-into-a-report-1234")
    pytester.makepyfile(
        "def test_x(record_property):\n    record_property('k', 'vast-key-leaked-into-a-report-1234')\n"
    )
    result = pytester.runpytest("--junitxml=out.xml")
    assert result.ret == pytest.ExitCode.OK
    assert "check-secrets" not in result.stdout.str()
