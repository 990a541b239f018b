"""``pytest --dumont-remote`` end to end against the emulator: the tests run on the instance, results come back as
ordinary pytest reports, and every path ends with the instance destroyed (checked against the emulator).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conftest import finish, remote_tree, wait_for


def destroyed_all(emulator) -> None:
    """Called once the run has exited: the run itself destroyed its instance (the watchdog would come later)."""
    assert emulator.world.live_ids() == []
    history = emulator.world.history()
    assert len(history) == 1
    assert history[0]["destroyed"]


def test_the_sample_passes_on_the_instance_and_fails_here(project: Path, remote_pytest, tmp_path: Path):
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    inner, emulator = remote_pytest(project, "-v", f"--junitxml={junit}", f"--dumont-json={report}")
    output = finish(inner)
    assert inner.returncode == 0, output
    assert "PASSED tests/test_on_instance.py::test_sees_the_gpu" in output
    assert "PASSED tests/test_on_instance.py::test_runs_in_the_synced_tree" in output
    assert "cwd: /workspace/dumont-remote/remote_project" in output
    lines = output.splitlines()
    synced = next(line for line in lines if line.startswith("dumont remote: instance"))
    assert "synced" in synced and "to /workspace/dumont-remote/remote_project" in synced
    assert any(line.strip().startswith("remote sync") for line in lines), output
    assert any(line.strip().startswith("remote setup") for line in lines), output
    assert "  destroyed: yes (confirmed)" in lines  # before the reports were written
    destroyed_all(emulator)

    # Ordinary reports: junit XML with each test's numbers, the JSON report with the sync and setup phases.
    cases = ElementTree.parse(junit).getroot().iter("testcase")  # noqa: S314 - the file our own run wrote
    properties = {case.get("name"): [p.get("name") for p in case.iter("property")] for case in cases}
    assert properties == {"test_sees_the_gpu": ["dumont"], "test_runs_in_the_synced_tree": ["dumont"]}
    doc = json.loads(report.read_text())
    (instance,) = doc["instances"]
    assert [p["name"] for p in instance["phases"] if p["kind"] == "remote"] == ["remote sync", "remote setup"]
    held = {hold["nodeid"] for hold in instance["holds"]}
    assert held == {
        "tests/test_on_instance.py::test_sees_the_gpu",
        "tests/test_on_instance.py::test_runs_in_the_synced_tree",
    }

    # The same tests on this runner fail: they can only pass where the tree was synced and a GPU answers.
    here = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert "1 failed" in here.stdout or "2 failed" in here.stdout, here.stdout
    assert "test_runs_in_the_synced_tree" in here.stdout


FAILING_AND_CRASHING = """
import os


def test_fails():
    assert 1 + 1 == 3


def test_crashes_its_worker():
    os._exit(3)


def test_passes():
    pass
"""


def test_a_failure_and_a_crashed_worker_are_reported_and_the_run_goes_on(project: Path, remote_pytest):
    (project / "tests" / "test_on_instance.py").unlink()
    (project / "tests" / "test_mixed.py").write_text(FAILING_AND_CRASHING)
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "-q")
    output = finish(inner)
    assert inner.returncode == 1, output
    assert "assert (1 + 1) == 3" in output
    assert "worker 'gw0' crashed while running 'tests/test_mixed.py::test_crashes_its_worker'" in output
    assert "missing from the totals" not in output  # remote workers rent nothing: no instance can be missing
    assert "2 failed, 1 passed" in output
    destroyed_all(emulator)


def test_a_test_that_does_not_import_there_shows_the_import_error(project: Path, remote_pytest):
    (project / "tests" / "test_needs_torch.py").write_text("import torch_not_installed_there\n\ndef test_x(): pass\n")
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "-q")
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "ERROR collecting tests/test_needs_torch.py" in output
    assert "E   ModuleNotFoundError: No module named 'torch_not_installed_there'" in output
    assert "2 passed, 1 error" in output  # as pytest-xdist reports a collection error: the other tests still run
    destroyed_all(emulator)


def test_a_failing_setup_shows_its_output_and_destroys_the_instance(project: Path, remote_pytest):
    setup = "echo preparing the venv; echo key=$CONTAINER_API_KEY; "
    setup += "echo 'pip: no matching distribution for torch' >&2; exit 7"
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", setup=setup)
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "remote setup failed on instance" in output and "(exit 7)" in output
    assert "preparing the venv" in output
    assert "key=***" in output  # the instance's own API key, in its environment as on Vast, is never shown
    assert "pip: no matching distribution for torch" in output
    assert "the setup command exited with 7" in output and "the instance was destroyed" in output
    assert "PASSED" not in output and "passed" not in output
    destroyed_all(emulator)


@pytest.mark.parametrize(
    ("where", "signum"),
    [("setup", signal.SIGINT), ("test", signal.SIGINT), ("test", signal.SIGTERM), ("test", signal.SIGKILL)],
    ids=["ctrl-c-in-setup", "ctrl-c-in-a-test", "sigterm-in-a-test", "sigkill-in-a-test"],
)
def test_an_interrupted_run_destroys_the_instance(project: Path, remote_pytest, where: str, signum: int):
    # The setup, or a test, leaves a file in the synced tree on the instance and then waits: the signal comes there.
    setup = "touch setup-started && sleep 300" if where == "setup" else None
    test = "import time\nfrom pathlib import Path\n\n\ndef test_waits():\n    Path('test-started').touch()\n"
    test += "    time.sleep(300)  # until the signal\n"
    (project / "tests" / "test_waits.py").write_text(test)
    if setup is None:
        inner, emulator = remote_pytest(project, "-p", "no:cacheprovider")
    else:
        inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", setup=setup)

    def reached() -> bool:
        tree = remote_tree(emulator, project.name)
        return inner.poll() is not None or bool(tree and (tree / f"{where}-started").exists())

    wait_for(reached, what=f"the {where} to start on the instance")
    assert inner.poll() is None, finish(inner)
    inner.send_signal(signum)
    output = finish(inner, timeout=60)
    if signum == signal.SIGKILL:  # nothing in pytest runs: the watchdog destroys it once pytest is gone
        assert inner.returncode == -signal.SIGKILL
        wait_for(lambda: not emulator.world.live_ids(), what="the watchdog to destroy the instance")
    else:
        assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    destroyed_all(emulator)


def test_paths_x_and_lf_select_on_the_instance_as_they_do_here(project: Path, remote_pytest):
    (project / "tests" / "test_mixed.py").write_text(FAILING_AND_CRASHING)
    # A path with a node id (remapped into the synced tree), and -x: the crash and the last test never run.
    inner, emulator = remote_pytest(
        project, "-q", "-x", "tests/test_mixed.py", "tests/test_on_instance.py::test_sees_the_gpu"
    )
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output  # pytest-xdist's exit for -x
    assert "stopping after 1 failures" in output and "1 failed" in output and "crashed" not in output, output
    destroyed_all(emulator)
    # --lf on the next run: the last-failed cache goes with the tree, so the instance runs only that test.
    inner, emulator = remote_pytest(project, "-q", "--lf")
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "1 failed in" in output and "passed" not in output and "crashed" not in output, output
    destroyed_all(emulator)


WAITS = "import time\nfrom pathlib import Path\n\n\ndef test_waits():\n    Path('test-started').touch()\n"
WAITS += "    time.sleep(300)\n"


def test_a_lost_connection_names_the_instance_and_destroys_it(project: Path, remote_pytest):
    (project / "tests" / "test_waits.py").write_text(WAITS)
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider")

    def started() -> bool:
        tree = remote_tree(emulator, project.name)
        return inner.poll() is not None or bool(tree and (tree / "test-started").exists())

    wait_for(started, what="the test to start on the instance")
    (instance_id,) = emulator.world.live_ids()
    emulator.world.host(instance_id).close()  # the machine stops answering SSH; the API still shows it running
    output = finish(inner, timeout=120)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    assert f"lost the connection to instance {instance_id} (dumont-" in output, output
    assert "tests/test_waits.py::test_waits" in output and "the instance was destroyed" in output
    destroyed_all(emulator)


def test_a_hanging_test_is_stopped_by_max_minutes(project: Path, remote_pytest):
    (project / "tests" / "test_waits.py").write_text(WAITS)
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "--dumont-max-minutes=0.05")
    output = finish(inner, timeout=120)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "tests/test_waits.py::test_waits ran past --dumont-max-minutes=0.05 on instance" in output, output
    assert "the instance was destroyed, which stopped the run" in output
    destroyed_all(emulator)


@pytest.mark.package_index
def test_the_default_setup_makes_a_venv_with_the_project_and_the_runners_pytest(project: Path, remote_pytest):
    # No --dumont-remote-setup: pip installs the runner's pytest, pytest-xdist and execnet versions and the project
    # (from the package index this machine reaches), in .dumont-venv beside the synced tree.
    shutil.rmtree(project / "vendor")
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "-q", setup=None)
    output = finish(inner, timeout=600)
    assert inner.returncode == 0, output
    assert "2 passed" in output
    assert "dumont remote: setup done in" in output
    destroyed_all(emulator)


HOLDS = """
import time
from pathlib import Path


def test_holds():
    Path("test-started").touch()
    give_up = time.monotonic() + 120
    while not Path("release").exists():  # the outer test counts connections meanwhile, then releases it
        assert time.monotonic() < give_up
        time.sleep(0.02)
"""


def test_the_workers_share_one_ssh_connection_per_instance(project: Path, remote_pytest):
    # Two workers: without the master connection each would make its own (key exchange, authentication).
    (project / "tests" / "test_on_instance.py").unlink()
    (project / "tests" / "test_holds.py").write_text(HOLDS)
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "--dumont-remote-workers=2")

    def started() -> bool:
        tree = remote_tree(emulator, project.name)
        return inner.poll() is not None or bool(tree and (tree / "test-started").exists())

    wait_for(started, what="the test to start on the instance")
    assert inner.poll() is None, finish(inner)
    (instance_id,) = emulator.world.live_ids()
    # The session's own connection (provisioning, sync, setup) and the workers' master connection.
    assert emulator.world.host(instance_id).ssh.connection_count == 2
    tree = remote_tree(emulator, project.name)
    assert tree is not None
    (tree / "release").touch()
    output = finish(inner)
    assert inner.returncode == 0, output
    assert "1 passed" in output
    destroyed_all(emulator)
