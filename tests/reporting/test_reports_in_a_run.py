"""The reports of real pytest runs against the bundled emulator: JSON, pytest-html, GitHub, hooks, xdist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

JOURNEY = """
    import fabric

    def test_write(ssh_session, dumont_phase):
        assert isinstance(ssh_session, fabric.Connection)
        with dumont_phase("create file"):
            ssh_session.run("mkdir -p /workspace && echo hi > /workspace/f", hide=True)

    def test_work(ssh_session):
        ssh_session.run("sleep 2", hide=True)  # the GPU job: the instance is held while it runs

    def test_plain():
        pass
"""


def inner_args(monkeypatch: pytest.MonkeyPatch, emulator, *extra: str) -> list[str]:
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "DUMONT_JSON"):
        monkeypatch.delenv(name, raising=False)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", *extra]


def test_the_json_report_has_phases_per_test_cost_and_matches_the_emulators_bill(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makepyfile(JOURNEY)
    summary = pytester.path / "step_summary.md"
    args = inner_args(monkeypatch, vast_emulator, "--dumont-json=out/report.json")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*cost by test: $* held by 2 test(s), $* provisioning overhead*", "*out/report.json"])
    doc = json.loads((pytester.path / "out" / "report.json").read_text())
    assert (doc["schema"], doc["schema_version"]) == ("pytest-dumont-report", 1)
    (instance,) = doc["instances"]
    kinds = {(p["kind"], p["name"]) for p in instance["phases"]}
    for expected in [
        ("provision", "search"),
        ("provision", "wait_running"),
        ("provision", "destroy"),
        ("user", "create file"),
        ("command", "$ mkdir -p /workspace && echo hi > /workspace/f"),
        ("command", "$ sleep 2"),
    ]:
        assert expected in kinds
    assert [c["status"] for c in instance["timeline"]][-1] == "running"
    assert "RTX 4090" in instance["facts"]["nvidia_smi"]
    tests = {t["nodeid"].split("::")[-1]: t for t in doc["tests"]}
    assert set(tests) == {"test_write", "test_work"} and tests["test_work"]["outcome"] == "passed"
    assert (
        tests["test_work"]["held_seconds"] >= 2.0 and tests["test_work"]["cost_usd"] > tests["test_write"]["cost_usd"]
    )
    assert tests["test_write"]["waited_seconds"] > 0 == tests["test_work"]["waited_seconds"]
    totals = doc["totals"]
    assert totals["tests_usd"] + totals["overhead_usd"] == pytest.approx(totals["billed_usd"])
    assert totals["leaked"] == []
    # The emulator's own billing of the same run: the billed estimate is within 1%.
    billed = vast_emulator.world.ledger()["total_cost"]
    assert totals["billed_usd"] == pytest.approx(billed, rel=0.01)
    assert totals["simple_usd"] > totals["billed_usd"]  # dph_total for all of the wall time, not just running
    text = summary.read_text()
    assert text.startswith("## pytest-dumont: 1 instance(s)") and "| wait for running |" in text


def test_user_hooks_are_called_and_one_that_raises_breaks_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makeconftest("""
        import json
        seen = []
        def pytest_dumont_instance_created(instance):
            seen.append(("created", instance["instance_id"]))
        def pytest_dumont_phase_finished(phase, instance_id):
            seen.append(("phase", phase["name"]))
        def pytest_dumont_instance_destroyed(instance):
            raise RuntimeError("relation webhook_configs does not exist")
        def pytest_dumont_session_cost(report, config):
            seen.append(("cost", report["totals"]["instances"]))
            (config.rootpath / "seen.json").write_text(json.dumps(seen))
    """)
    pytester.makepyfile("def test_a(ssh_session, dumont_phase):\n    with dumont_phase('mine'):\n        pass\n")
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, "--html=r.html"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*destroyed: yes (confirmed)*",
            "*HOOK ERROR (ignored, the run went on): pytest_dumont_instance_destroyed in conftest raised "
            "RuntimeError: relation webhook_configs does not exist*",
        ]
    )
    seen = [tuple(x) for x in json.loads((pytester.path / "seen.json").read_text())]
    assert seen[0][0] == "created" and ("phase", "search") in seen and ("phase", "mine") in seen
    assert ("phase", "destroy") in seen and seen[-1] == ("cost", 1)
    assert vast_emulator.world.live_ids() == []
    assert "webhook_configs does not exist" in (pytester.path / "r.html").read_text()


def test_hooks_hear_of_an_instance_while_the_test_runs_and_of_each_event_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makeconftest("""
        import json
        EVENTS = []
        def pytest_dumont_instance_created(instance):
            EVENTS.append(["created", instance["instance_id"]])
        def pytest_dumont_instance_destroyed(instance):
            EVENTS.append(["destroyed", instance["instance_id"], [p["name"] for p in instance["phases"]][-1]])
        def pytest_unconfigure(config):
            (config.rootpath / "events.json").write_text(json.dumps(EVENTS))
    """)
    pytester.makepyfile("""
        from conftest import EVENTS

        def test_shared(vast_gpu):
            assert EVENTS == [["created", vast_gpu.id]]  # told at the create, not at this test's end

        def test_rented(dumont_instance_factory):
            mine = dumont_instance_factory()
            assert EVENTS[-1] == ["created", mine.id]
            dumont_instance_factory.destroy(mine)
            assert EVENTS[-1] == ["destroyed", mine.id, "destroy"]  # told once it is confirmed gone
    """)
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, "--dumont-prewarm=off"))
    result.assert_outcomes(passed=2)
    events = json.loads((pytester.path / "events.json").read_text())
    created = [e[1] for e in events if e[0] == "created"]
    destroyed = [e[1] for e in events if e[0] == "destroyed"]
    assert len(created) == 2 and sorted(created) == sorted(destroyed)  # each instance once each way


def test_an_unwritable_json_path_is_reported_and_the_rest_of_the_report_is_kept(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    # The path is fine at configure (its directory is still to be made); the test then puts a file in its way, so
    # the write fails only at the end, after the instance was rented and destroyed.
    pytester.makepyfile("""
        import pathlib
        def test_a(vast_gpu):
            pathlib.Path("blocker").write_text("a file, not a directory")
    """)
    result = pytester.runpytest(
        *inner_args(monkeypatch, vast_emulator, "--dumont-json=blocker/r.json", "--html=r.html")
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*all instances destroyed*", "*dumont JSON report NOT written: cannot write blocker/r.json: *"]
    )
    assert "all instances destroyed" in (pytester.path / "r.html").read_text()


def test_under_xdist_the_controller_gathers_the_workers_instances_and_writes_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makepyfile("""
        import pytest
        def test_4090(vast_gpu):
            assert vast_gpu.gpu_name == "RTX 4090"
        @pytest.mark.dumont_offer(gpu="RTX 3090", max_dph=1.0)
        def test_3090(vast_gpu):
            assert vast_gpu.gpu_name == "RTX 3090"
    """)
    summary = pytester.path / "summary.md"
    args = inner_args(
        monkeypatch,
        vast_emulator,
        "-n",
        "2",
        "--dist",
        "load",
        "-p",
        "no:benchmark",
        "--dumont-json=r.json",
        "--html=r.html",
    )
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["totals"]["instances"] == len(vast_emulator.world.history())
    assert {t["gpu_name"] for t in doc["tests"]} == {"RTX 4090", "RTX 3090"}
    assert all(t["outcome"] == "passed" for t in doc["tests"])
    assert {i["instance_id"] for i in doc["instances"]} == {r["id"] for r in vast_emulator.world.history()}
    assert summary.read_text().count("## pytest-dumont") == 1  # the controller wrote it, the workers did not
    result.stdout.fnmatch_lines(["*pytest-dumont (emulator): 2 instance(s)*", "*all instances destroyed*"])
    html = (pytester.path / "r.html").read_text()
    assert "RTX 3090" in html and "col-dumont_cost" in html


def test_no_report_artifact_holds_a_secret(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator):
    pytester.makepyfile(JOURNEY.replace("sleep 2", "true"))
    summary = pytester.path / "summary.md"
    args = inner_args(monkeypatch, vast_emulator, "--dumont-json=r.json", "--html=r.html", "--self-contained-html")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=3)
    from pytest_dumont.cli import main

    assert main(["report", "merge", str(pytester.path / "r.json"), "-o", str(pytester.path / "merged")]) == 0
    artifacts = [Path(pytester.path / n) for n in ("r.json", "r.html", "summary.md", "merged.json", "merged.md")]
    artifacts.append(pytester.path / "merged.html")
    for path in artifacts:
        text = path.read_text()
        assert vast_emulator.api_key not in text, path
        assert "PRIVATE KEY" not in text, path
    assert vast_emulator.api_key not in result.stdout.str()


def test_a_test_that_rents_with_the_factory_has_the_cells_and_extras_of_the_instances_it_rented(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    from test_scenario_figures import html_data

    from pytest_dumont.reporting.phases import usd

    pytester.makepyfile("""
        def test_rented(dumont_instance_factory):
            factory = dumont_instance_factory
            first, second = factory(), factory()
            with factory.phase(first, "warm up"):
                first.connection.run("true", hide=True)
            factory.destroy(second)  # its hold ends with its bill, not with the test

        def test_shared(vast_gpu):
            pass
    """)
    args = inner_args(monkeypatch, vast_emulator, "--dumont-prewarm=off", "--dumont-json=r.json", "--html=r.html")
    pytester.runpytest(*args).assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "r.json").read_text())
    rented = [t for t in doc["tests"] if t["nodeid"].endswith("test_rented")]
    assert len(rented) == 2 and len({t["instance_id"] for t in rented}) == 2
    (row,) = next(rows for nodeid, rows in html_data(pytester.path / "r.html")["tests"].items() if "rented" in nodeid)
    assert row["dumont_gpu"] == "RTX 4090 + RTX 4090"
    assert float(row["dumont_dph"]) == pytest.approx(sum(t["dph_total"] for t in rented), abs=1e-4)
    assert float(row["dumont_provision"]) == pytest.approx(sum(t["waited_seconds"] for t in rented), abs=0.01)
    assert row["dumont_cost"].strip() == usd(sum(t["cost_usd"] for t in rented))  # what the JSON bills the test
    extras = json.dumps(row)
    for test in rented:  # an extra per instance: its phases (provisioning, the one it named) and status timeline
        assert f"instance {test['instance_id']} &middot;" in extras
    assert "warm up" in extras and extras.count("dumont-timeline-chart") == 2
    gone = next(e for e in doc["instances"] if e["instance_id"] == rented[1]["instance_id"])
    assert rented[1]["held_seconds"] <= gone["times"]["billing_ended_at"] - gone["times"]["ready_at"] + 1e-6
    shared = next(t for t in doc["tests"] if t["nodeid"].endswith("test_shared"))
    (row,) = next(rows for nodeid, rows in html_data(pytester.path / "r.html")["tests"].items() if "shared" in nodeid)
    assert row["dumont_gpu"] == "RTX 4090" and row["dumont_cost"].strip() == usd(shared["cost_usd"])
