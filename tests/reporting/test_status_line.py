"""The live status line: on a terminal its seconds advance at every poll; a CI log gets one line per status change."""

from __future__ import annotations

from contextlib import nullcontext

from pytest_dumont.reporting.status_line import StatusLine

POLLS = [("loading", 0.4), ("loading", 1.1), ("loading", 2.6), ("running", 3.0), ("running", 3.2)]


def written(rewrite: bool) -> str:
    out: list[str] = []
    line = StatusLine(out.append, rewrite=rewrite, quiet=nullcontext)
    for status, elapsed in POLLS:
        line(29441924, status, elapsed)
    return "".join(out)


def test_on_a_terminal_the_seconds_advance_at_every_poll_and_the_line_ends_once_at_running():
    text = written(rewrite=True)
    shown = [part.strip() for part in text.split("\r") if part]
    assert shown == [
        "dumont: instance 29441924 loading after 0.4 s",
        "dumont: instance 29441924 loading after 1.1 s",
        "dumont: instance 29441924 loading after 2.6 s",
        "dumont: instance 29441924 running after 3.0 s",
    ]
    assert text.endswith("running after 3.0 s\n") and text.count("\n") == 1


def test_in_a_log_each_status_is_one_line_however_often_it_is_polled():
    assert written(rewrite=False).splitlines() == [
        "",
        "dumont: instance 29441924 loading after 0.4 s",
        "dumont: instance 29441924 running after 3.0 s",
    ]


def test_a_gpu_test_waiting_for_its_instance_sees_the_boot_status(pytester):
    pytester.makepyfile("def test_a(vast_gpu):\n    pass\n")
    result = pytester.runpytest("--dumont-mode=emulator", "--dumont-prewarm=off", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["dumont: instance * running after * s"])
