"""``--dumont-remote-instances N`` end to end against the emulator: N instances rented at once, each synced and set up,
one gateway each, the tests spread over all of them, every instance destroyed whatever happens.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conftest import VENDOR_SETUP, finish, wait_for
from pytest_dumont.emulator.world import FIRST_INSTANCE_ID

# Each test says which instance ran it: the emulator gives every instance its id in CONTAINER_ID, as Vast does.
WHERE = """
import os

import pytest


@pytest.mark.parametrize("n", range(6))
def test_where(n, record_property):
    record_property("instance", os.environ["CONTAINER_ID"])
"""


def ran_on(junit: Path) -> dict[str, str]:
    """Each test's instance, as the test itself recorded it on the instance (a junit property)."""
    root = ElementTree.parse(junit).getroot()  # noqa: S314 - the file our own run wrote
    return {
        case.get("name", ""): prop.get("value", "")
        for case in root.iter("testcase")
        for prop in case.iter("property")
        if prop.get("name") == "instance"
    }


def every_instance_destroyed(emulator, count: int) -> list[int]:
    """Called once the run has exited: the run itself destroyed all ``count`` instances it rented."""
    assert emulator.world.live_ids() == []
    history = emulator.world.history()
    assert len(history) == count, history
    assert all(row["destroyed"] for row in history), history
    return [row["id"] for row in history]


def test_two_instances_each_run_tests_and_both_are_destroyed(project: Path, remote_pytest, tmp_path: Path):
    (project / "tests" / "test_on_instance.py").unlink()
    (project / "tests" / "test_where.py").write_text(WHERE)
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    inner, emulator = remote_pytest(
        project,
        "-p",
        "no:cacheprovider",
        "--dumont-remote-instances=2",
        f"--junitxml={junit}",
        f"--dumont-json={report}",
    )
    output = finish(inner)
    assert inner.returncode == 0, output
    assert "6 passed" in output
    assert "1 worker(s) on each of 2 instances" in output
    ids = every_instance_destroyed(emulator, 2)

    # Both instances were synced and set up, and each ran some of the tests (xdist's load scheduling).
    synced = [line for line in output.splitlines() if line.startswith("dumont remote: instance")]
    assert sorted(int(line.split()[3]) for line in synced) == sorted(ids), synced
    assert all("synced" in line and "to /workspace/dumont-remote/remote_project" in line for line in synced)
    assert output.count("dumont remote: setup done in") == 2
    where = ran_on(junit)
    assert len(where) == 6 and set(where.values()) == {str(i) for i in ids}, where

    # The report: each instance with its own sync and setup phases, its own tests' holds and its own cost.
    doc = json.loads(report.read_text())
    instances = {row["instance_id"]: row for row in doc["instances"]}
    assert sorted(instances) == sorted(ids)
    for instance_id, row in instances.items():
        assert [p["name"] for p in row["phases"] if p["kind"] == "remote"] == ["remote sync", "remote setup"]
        held = {hold["nodeid"].rsplit("::", 1)[1] for hold in row["holds"]}
        assert held == {name for name, on in where.items() if on == str(instance_id)}, (instance_id, held)
        assert row["cost"]["billed_usd"] > 0


def test_a_setup_failing_on_one_instance_destroys_both_and_names_it(project: Path, remote_pytest):
    # The setup fails on the session's first instance only; the other one sets up fine.
    setup = f'if [ "$CONTAINER_ID" = {FIRST_INSTANCE_ID} ]; then echo "no CUDA driver here"; exit 7; fi; '
    setup += VENDOR_SETUP
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "--dumont-remote-instances=2", setup=setup)
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    ids = every_instance_destroyed(emulator, 2)
    other = next(i for i in ids if i != FIRST_INSTANCE_ID)
    assert f"remote setup failed on instance {FIRST_INSTANCE_ID} (" in output and "(exit 7)" in output
    assert "no CUDA driver here" in output
    assert f"remote setup failed on instance {other}" not in output
    assert f"the setup command exited with 7 on instance {FIRST_INSTANCE_ID} (" in output, output
    assert f"every instance ({', '.join(map(str, ids))}) was destroyed" in output, output
    assert "passed" not in output


def test_a_failed_rental_cancels_the_others_and_says_so(project: Path, remote_pytest):
    # Only one offer matches, so the second rental finds nothing (the emulator rents one instance per machine).
    inner, emulator = remote_pytest(
        project, "-p", "no:cacheprovider", "--dumont-remote-instances=2", "--dumont-gpu=RTX 3090"
    )
    output = finish(inner)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "--dumont-remote: no instance to run the tests on:" in output, output
    assert "(renting 2 instances; every one rented was destroyed)" in output
    assert emulator.world.live_ids() == []
    assert all(row["destroyed"] for row in emulator.world.history())


WAIT_ON_EACH = """
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(2))
def test_waits(n):
    Path(f"started-{n}").touch()
    time.sleep(300)
"""


def test_a_lost_instance_names_itself_and_its_tests_and_every_instance_is_destroyed(project: Path, remote_pytest):
    (project / "tests" / "test_on_instance.py").unlink()
    (project / "tests" / "test_waits.py").write_text(WAIT_ON_EACH)
    inner, emulator = remote_pytest(project, "-p", "no:cacheprovider", "--dumont-remote-instances=2")

    def started_on(instance_id: int) -> str | None:
        tree = emulator.world.host(instance_id).sandbox.workspace / "dumont-remote" / project.name
        found = sorted(tree.glob("started-*")) if tree.exists() else []
        return found[0].name.split("-")[1] if found else None

    def both_started() -> bool:
        live = emulator.world.live_ids()
        return inner.poll() is not None or (len(live) == 2 and all(started_on(i) for i in live))

    wait_for(both_started, what="a test to start on each instance")
    assert inner.poll() is None, finish(inner)
    lost, other = sorted(emulator.world.live_ids())
    running_there = f"tests/test_waits.py::test_waits[{started_on(lost)}]"
    emulator.world.host(lost).close()  # that machine stops answering SSH; the other goes on
    output = finish(inner, timeout=120)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, output
    assert f"lost the connection to instance {lost} (dumont-" in output, output
    assert f"(tests running then: {running_there})" in output, output
    assert f"every instance ({lost}, {other}) was destroyed" in output
    every_instance_destroyed(emulator, 2)
