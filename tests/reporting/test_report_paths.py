"""Report paths are checked when pytest starts, and our cost summary survives another writer's crash at the end."""

from __future__ import annotations

import pytest

GPU_TEST = "def test_gpu(vast_gpu):\n    pass\n"


def emulator_args(monkeypatch: pytest.MonkeyPatch, emulator, *extra: str) -> list[str]:
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    monkeypatch.delenv("DUMONT_JSON", raising=False)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", *extra]


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--html", "reports", "is a directory"),
        ("--junitxml", "a-file/r.xml", "a-file is not a directory"),
        ("--dumont-json", "reports", "is a directory"),
        ("--html", "a-file/r.html", "a-file is not a directory"),
        ("--dumont-json", "a-file/deeper/r.json", "a-file is not a directory"),
    ],
)
def test_a_report_path_that_cannot_be_written_is_a_usage_error_before_anything_is_rented(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator, option: str, value: str, problem: str
):
    pytester.makepyfile(GPU_TEST)
    (pytester.path / "reports").mkdir()
    (pytester.path / "a-file").write_text("")
    result = pytester.runpytest_subprocess(*emulator_args(monkeypatch, vast_emulator, f"{option}={value}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"*{option} {value}: *{problem}*nothing was run or rented*"])
    assert vast_emulator.world.history() == []


def test_a_report_path_in_directories_still_to_be_made_is_fine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--junitxml=new/dir/r.xml", "--html=other/r.html")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "new" / "dir" / "r.xml").exists()


CRASHING_WRITER = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    raise IsADirectoryError(21, "Is a directory", "late-report.html")
"""


def test_our_summary_is_written_when_another_writer_crashes_at_the_end(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makeconftest(CRASHING_WRITER)
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest_subprocess(*emulator_args(monkeypatch, vast_emulator))
    assert result.ret != pytest.ExitCode.OK
    output = result.stdout.str() + result.stderr.str()
    assert "late-report.html" in output  # the writer's own error is still shown
    result.stdout.fnmatch_lines(
        ["*pytest-dumont (emulator): 1 instance(s), $* billed estimate*", "*all instances destroyed*"]
    )
