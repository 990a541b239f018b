"""`dumont parked`, `dumont release`, `dumont reap` around parked instances; the options; xdist shared mode."""

from __future__ import annotations

import json
import re

import pytest
from reuse_helpers import dumont, entry_of, ledger_entries

from pytest_dumont.session.settings import REUSE_DEFAULT_MIN, parse_reuse


def test_dumont_parked_lists_rate_cost_so_far_and_expiry_and_release_destroys(run, emulator, used, state_dir):
    assert dumont("parked").stdout.strip() == "no parked instances"
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    listed = dumont("parked")
    assert listed.returncode == 0
    assert re.search(
        rf"^instance {instance_id}  \$0\.1689/h  parked \d+\.\d min \(\$0\.\d{{4}} so far\)  until \d\d:\d\d  - "
        r"nvidia/cuda:12\.1\.0-base-ubuntu22\.04 on 1x RTX 4090",
        listed.stdout,
        re.MULTILINE,
    ), listed.stdout
    (row,) = json.loads(dumont("parked", "--json").stdout)["parked"]
    assert row["instance_id"] == instance_id and not row["expired"] and row["cost_so_far_usd"] >= 0
    assert row["expires"] - row["parked_at"] == pytest.approx(300, abs=5)

    unknown = dumont("release", "12345")
    assert unknown.returncode == 1
    assert "instance 12345 is not parked here" in unknown.stderr
    assert emulator.world.live_ids() == [instance_id]

    released = dumont("release", str(instance_id))
    assert released.returncode == 0, released.stderr
    assert f"released instance {instance_id}: destroyed, confirmed" in released.stdout
    assert emulator.world.live_ids() == []
    assert entry_of(state_dir, instance_id)["state"] == "destroyed"
    assert not any((state_dir / "parked").iterdir())
    again = dumont("release", str(instance_id))
    assert again.returncode == 1 and "is not parked here" in again.stderr


def test_release_all_destroys_every_parked_instance_and_asks_for_ids_or_all(run, emulator, used):
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    run("--dumont-reuse=5", "--dumont-image=python:3.11-slim").assert_outcomes(passed=1)
    assert len(emulator.world.live_ids()) == 2
    assert dumont("release").returncode == 2
    released = dumont("release", "--all")
    assert released.returncode == 0 and released.stdout.count("destroyed, confirmed") == 2
    assert emulator.world.live_ids() == []
    assert "no parked instances to release" in dumont("release", "--all").stdout


@pytest.mark.parametrize("args", [(), ("--label-prefix", "dumont-")])
def test_reap_leaves_an_unexpired_parked_instance_alone(run, emulator, used, state_dir, args):
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    reaped = dumont("reap", *args)
    assert reaped.returncode == 0, reaped.stderr
    assert re.search(r"left alone: dumont-\w+-1: parked until \d\d:\d\d", reaped.stdout), reaped.stdout
    assert emulator.world.live_ids() == [instance_id]
    assert entry_of(state_dir, instance_id)["state"] == "parked"


def test_xdist_shared_mode_parks_the_controllers_instance_and_the_next_run_adopts_it(run, pytester, emulator, used):
    pytester.makepyfile(
        test_more="def test_cpu_only():\n    pass\n"
    )  # a worker without GPU tests: the early release must not destroy the instance
    first = run("--dumont-reuse=5", "-n", "2")
    first.assert_outcomes(passed=2)
    second = run("--dumont-reuse=5", "-n", "2")
    second.assert_outcomes(passed=2)
    (first_id, _), (second_id, files) = used()
    assert second_id == first_id and files == 1
    assert len(emulator.world.history()) == 1
    second.stdout.fnmatch_lines(["*adopt parked instance*", f"PARKED instance {first_id} billing*"])


def test_xdist_per_worker_mode_names_the_workers_parked_instances_in_the_controllers_summary(run, emulator, used):
    # Without prewarming only the worker that runs the GPU test rents or adopts (docs/xdist.md): with it, both workers
    # prewarm, and the idle one, when it won the race for the parked instance, left the test's worker a new rental.
    per_worker = ("--dumont-reuse=5", "-n", "2", "--dumont-xdist=per-worker", "--dumont-prewarm=off")
    first = run(*per_worker)
    first.assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    first.stdout.fnmatch_lines([f"PARKED instance {instance_id} billing*"])
    run(*per_worker).assert_outcomes(passed=1)
    assert [i for i, _ in used()] == [instance_id, instance_id]


def test_the_options_resolve_from_flag_ini_and_environment(pytester, monkeypatch):
    pytester.makepyfile(
        test_settings="""
        def test_show(dumont_settings):
            print("REUSE", dumont_settings.reuse_min, dumont_settings.reuse_clean, dumont_settings.reuse_in_ci)
        """
    )
    bare = pytester.runpytest("--dumont-reuse", "-s", "-p", "no:randomly")
    bare.stdout.fnmatch_lines([f"*REUSE {REUSE_DEFAULT_MIN} False False*"])
    monkeypatch.setenv("DUMONT_REUSE", "30")
    monkeypatch.setenv("DUMONT_REUSE_CLEAN", "yes")
    pytester.runpytest("-s", "-p", "no:randomly").stdout.fnmatch_lines(["*REUSE 30.0 True False*"])
    pytester.makeini("[pytest]\ndumont_reuse = 5\ndumont_reuse_in_ci = yes\n")
    pytester.runpytest("-s", "-p", "no:randomly").stdout.fnmatch_lines(["*REUSE 5.0 True True*"])
    bad = pytester.runpytest("--dumont-reuse=soon")
    bad.stderr.fnmatch_lines(["*--dumont-reuse='soon': must be a number of minutes*"])


@pytest.mark.parametrize(
    ("text", "minutes"), [("yes", REUSE_DEFAULT_MIN), ("on", REUSE_DEFAULT_MIN), ("no", 0.0), ("0", 0.0), ("2.5", 2.5)]
)
def test_parse_reuse(text, minutes):
    assert parse_reuse(text) == minutes


@pytest.mark.parametrize("text", ["-1", "2000", "soon"])
def test_parse_reuse_refuses(text):
    with pytest.raises(ValueError, match="minutes"):
        parse_reuse(text)


def test_reuse_without_a_dead_man_switch_is_refused_and_nothing_is_parked(run, emulator, used, state_dir):
    result = run("--dumont-reuse=5", "--dumont-deadman-ttl=0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["DUMONT WARNING: --dumont-reuse is refused with --dumont-deadman-ttl=0*"])
    assert emulator.world.live_ids() == []
    assert [e["state"] for e in ledger_entries(state_dir)] == ["destroyed"]
