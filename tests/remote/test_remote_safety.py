"""The backstops of any rental, in remote mode: ``--dumont-keep-on-failure`` keeps the instance of a failed remote test
(or setup) as it keeps a ``vast_gpu`` one, and the dead-man switch is on every remote instance and renewed while the
tests run there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import VENDOR_SETUP, finish, remote_tree, wait_for
from pytest_dumont.safety.ledger_file import LedgerFile
from pytest_dumont.vast.client import VastClient

FAILS = "def test_fails():\n    assert 1 + 1 == 3, 'look at me'\n"


def kept_warning(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("DUMONT WARNING: KEPT instance")]
    return line


@pytest.mark.parametrize("what", ["a test", "the setup"])
def test_keep_on_failure_keeps_the_failed_instance_and_says_how_to_reach_and_destroy_it(
    project: Path, remote_pytest, private_state: Path, what: str
):
    (project / "tests" / "test_fails.py").write_text(FAILS)
    setup = VENDOR_SETUP if what == "a test" else "echo 'pip: no matching distribution for torch'; exit 7"
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "--dumont-keep-on-failure", setup=setup)
    output = finish(inner)
    (kept,) = emulator.world.live_ids()
    warning = kept_warning(output)
    if what == "a test":
        assert inner.returncode == pytest.ExitCode.TESTS_FAILED, output
        assert "1 failed, 2 passed" in output
        assert f"KEPT instance {kept} (dumont-" in warning and "after tests/test_fails.py::test_fails failed" in warning
        assert "its interpreter /workspace/dumont-remote/remote_project/.dumont-venv/bin/python" in warning
    else:
        assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
        assert f"the setup command exited with 7 on instance {kept} (" in output
        assert f"instance {kept} was kept (--dumont-keep-on-failure: see its warning)" in output, output
        assert "after the remote setup failed" in warning
    assert "IT IS STILL BILLING. The synced tree is /workspace/dumont-remote/remote_project" in warning
    assert f"`vastai destroy instance {kept}` or `dumont reap --include-kept`" in warning
    assert "Its dead-man switch stays armed" in warning
    assert "  destroyed: yes" not in output.splitlines()

    # What the person finds there: the synced tree, as the run left it. The watchdog, done, spared the instance.
    tree = remote_tree(emulator, project.name)
    assert tree is not None and (tree / "tests" / "test_fails.py").read_text() == FAILS
    wait_for(lambda: "done in" in next(private_state.glob("watchdog-*.log")).read_text(), what="the watchdog's end")
    assert emulator.world.live_ids() == [kept]
    assert [(e.instance_id, e.state) for e in LedgerFile(private_state / "ledger.json").entries()] == [(kept, "kept")]
    VastClient(emulator.url, emulator.api_key).destroy_instance(kept)  # as the warning says, with the API


def test_without_keep_on_failure_a_failed_remote_test_s_instance_is_destroyed(project: Path, remote_pytest):
    (project / "tests" / "test_fails.py").write_text(FAILS)
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider")
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "KEPT" not in output
    assert emulator.world.live_ids() == []


# Runs on the instance: the switch's deadline file is there from the start, and the session pushes it on while the
# test outlives the first deadline (the instance's own clock, which the switch reads).
OUTLIVES_THE_TTL = """
import time
from pathlib import Path

DEADLINE = Path.home() / ".dumont-deadline"


def test_outlives_the_ttl():
    first = int(DEADLINE.read_text())
    give_up = time.monotonic() + 60
    while time.time() < first + 2 or int(DEADLINE.read_text()) <= first:
        assert time.monotonic() < give_up, "the deadline was not renewed past the first one"
        time.sleep(0.1)  # polling the instance's clock and the deadline file, which the switch reads
"""


def test_a_remote_instance_carries_the_dead_man_switch_renewed_while_the_tests_run(project: Path, remote_pytest):
    (project / "tests" / "test_on_instance.py").unlink()
    (project / "tests" / "test_deadman.py").write_text(OUTLIVES_THE_TTL)
    # A 2.4 s TTL: unrenewed, the switch would destroy the instance under the running test.
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "--dumont-deadman-ttl=0.04")
    output = finish(inner)
    assert inner.returncode == 0, output
    assert "1 passed" in output
    assert "DUMONT WARNING" not in output  # no renewal failed
    assert "  destroyed: yes (confirmed)" in output.splitlines()  # by the session, at its end
    assert emulator.world.live_ids() == []
