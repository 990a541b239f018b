"""What users met in a fresh run, each held by a real pytest run against the bundled emulator: stopped instances,
xdist's shared instance, prewarming, nested phases, the prices the report compares with, what the scenarios print."""

from __future__ import annotations

import json
from typing import Any

import pytest


def inner_args(monkeypatch: pytest.MonkeyPatch, emulator: Any, *extra: str) -> list[str]:
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "DUMONT_JSON"):
        monkeypatch.delenv(name, raising=False)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", *extra]


def close_to(reported: float, billed: float) -> bool:
    """The campaign's rule: within 1%, or one micro-dollar for amounts too small for 1% to mean anything."""
    return abs(reported - billed) <= max(0.01 * billed, 1e-6)


STOP_START_REBOOT = """
    import time

    def test_pause_and_resume(dumont_instance_factory):
        factory = dumont_instance_factory
        gpu = factory()
        gpu.connection.run("echo before > /workspace/f", hide=True)
        factory.stop(gpu)
        time.sleep(1.5)  # the workload of this test: time spent stopped, which bills storage only
        factory.start(gpu)
        assert gpu.connection.run("cat /workspace/f", hide=True).stdout == "before\\n"
        factory.reboot(gpu)
        gpu.connection.run("true", hide=True)
        statuses = [c.status for c in gpu.timeline]
        assert statuses.count("running") == 3 and "stopped" in statuses and "rebooting" in statuses
"""


def test_a_stopped_instance_bills_storage_only_and_each_start_and_reboot_is_followed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, standalone_emulator
):
    pytester.makepyfile(STOP_START_REBOOT)
    args = inner_args(monkeypatch, standalone_emulator, "--dumont-json=r.json", "--dumont-prewarm=off")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((pytester.path / "r.json").read_text())["instances"]
    billed = standalone_emulator.ledger()[entry["instance_id"]]
    assert len(entry["gpu_spans"]) == 3  # running, started again, rebooted
    assert entry["cost"]["running_seconds"] < entry["cost"]["exists_seconds"] - 1.5
    assert close_to(entry["cost"]["gpu_usd"], billed["gpu_cost"]), (entry["cost"], billed)
    assert close_to(entry["cost"]["billed_usd"], billed["cost"]), (entry["cost"], billed)


XDIST_PHASES = """
    def test_one(ssh_session, dumont_phase):
        with dumont_phase("write file"):
            ssh_session.run("echo one > /workspace/one", hide=True)

    def test_two(ssh_session, dumont_phase):
        with dumont_phase("read file"):
            ssh_session.run("cat /etc/hostname", hide=True)
"""


def test_under_xdist_shared_mode_the_tests_phases_reach_the_session_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makepyfile(XDIST_PHASES)
    args = inner_args(monkeypatch, vast_emulator, "-n", "2", "--dumont-xdist=shared", "--dumont-json=r.json")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "r.json").read_text())
    (entry,) = doc["instances"]
    phases = entry["phases"]
    by_name = {p["name"]: p for p in phases}
    for name, test in [("write file", "test_one"), ("read file", "test_two")]:
        assert by_name[name]["kind"] == "user" and by_name[name]["test"].endswith(test)
    command = by_name["$ echo one > /workspace/one"]
    assert command["test"].endswith("test_one") and phases[command["parent"]]["name"] == "write file"
    # The terminal's instance table has them too, from the same document.
    table = result.stdout.str()
    assert "  write file  " in table and "  read file  " in table


FIRST_TEST = """
    def test_first(ssh_session):
        ssh_session.run("true", hide=True)

    def test_second(ssh_session):
        ssh_session.run("true", hide=True)
"""
CAPTURE = """
    import json

    SEEN = {}

    def pytest_runtest_logreport(report):
        for key, value in report.user_properties:
            if key == "dumont" and report.when == "call":
                SEEN[report.nodeid.split("::")[-1]] = value

    def pytest_unconfigure(config):
        (config.rootpath / "seen.json").write_text(json.dumps(SEEN))
"""


def test_with_prewarming_the_test_that_waited_for_the_boot_has_the_timeline_and_provisioning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makeconftest(CAPTURE)
    pytester.makepyfile(FIRST_TEST)
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, "--dumont-prewarm=on"))
    result.assert_outcomes(passed=2)
    seen = json.loads((pytester.path / "seen.json").read_text())
    first, second = seen["test_first"], seen["test_second"]
    assert [c["status"] for c in first["timeline"]][-1] == "running"
    assert {"search", "create", "wait_running", "wait_ssh"} <= {p["name"] for p in first["phases"]}
    assert second["timeline"] == [] and {p["kind"] for p in second["phases"]} == {"command"}


NESTED = """
    def test_nested(ssh_session, dumont_phase):
        with dumont_phase("create file"):
            ssh_session.run("mkdir -p /workspace/n", hide=True)
            with dumont_phase("write it"):
                ssh_session.run("printf x > /workspace/n/f", hide=True)
        ssh_session.run("true", hide=True)
"""


def test_a_command_inside_a_phase_is_nested_under_it_and_counted_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makeconftest(CAPTURE)
    pytester.makepyfile(NESTED)
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, "--dumont-json=r.json", "--dumont-prewarm=off"))
    result.assert_outcomes(passed=1)
    from pytest_dumont.reporting.phases import rows_for_test, total_row

    data = json.loads((pytester.path / "seen.json").read_text())["test_nested"]
    rows = rows_for_test(data["phases"], data["held_seconds"], data["cost_usd"])
    depth = {r.label: r.depth for r in rows}
    assert depth["create file"] == 0 and depth["$ mkdir -p /workspace/n"] == 1 and depth["write it"] == 1
    assert depth["$ printf x > /workspace/n/f"] == 2 and depth["$ true"] == 0
    provisioning = sum(p["duration"] for p in data["phases"] if p["kind"] == "provision")
    seconds, _ = total_row(rows)
    assert seconds == pytest.approx(provisioning + data["held_seconds"])  # never the nested seconds twice
    # Each level adds up to 100% of its parent: the top level of the table, and the phase's own children.
    assert sum(r.share for r in rows if r.depth == 0) == pytest.approx(100.0, abs=0.1)
    index = [r.label for r in rows].index("create file")
    children = [r for r in rows[index + 1 :] if r.depth >= 1]
    children = children[: next((i for i, r in enumerate(rows[index + 1 :]) if r.depth == 0), len(children))]
    assert sum(r.share for r in children if r.depth == 1) == pytest.approx(100.0, abs=0.1)
    # The JSON report says where each command ran: its test and the phase around it.
    phases = json.loads((pytester.path / "r.json").read_text())["instances"][0]["phases"]
    named = {p["name"]: p for p in phases}
    assert phases[named["$ printf x > /workspace/n/f"]["parent"]]["name"] == "write it"
    assert phases[named["write it"]["parent"]]["name"] == "create file"
    assert named["$ true"]["parent"] is None and named["$ true"]["test"].endswith("test_nested")
    # The terminal shows the nesting and totals the instance once.
    result.stdout.fnmatch_lines(["*  create file *", "*    write it *"])


def test_a_teams_reference_prices_file_is_checked_before_anything_is_rented(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makepyfile("def test_gpu(vast_gpu):\n    pass\n")
    bad = pytester.path / "prices.json"
    bad.write_text(json.dumps({"prices": [{"provider": "Lambda", "instance_type": "gpu_1x_a10", "gpu": "A10",
                                           "usd_per_hour": "cheap", "region": "us-west-1", "date": "2026-11-01",
                                           "source": "https://lambda.ai/pricing"}]}))  # fmt: skip
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, f"--dumont-reference-prices={bad}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*prices.json: entry 0 (Lambda): usd_per_hour must be a positive number*'cheap'*"])
    assert vast_emulator.world.history() == []  # nothing was rented

    good = json.loads(bad.read_text())
    good["prices"][0]["usd_per_hour"] = 0.75
    bad.write_text(json.dumps(good))
    args = inner_args(monkeypatch, vast_emulator, f"--dumont-reference-prices={bad}", "--dumont-runs-per-day=24")
    result = pytester.runpytest(*args, "--dumont-json=r.json")
    result.assert_outcomes(passed=1)
    p = json.loads((pytester.path / "r.json").read_text())["projections"]
    assert [c["provider"] for c in p["comparison"]] == ["Lambda"] and p["prices_source"] == str(bad)
    assert p["runs_per_day"] == 24 and p["per_day_usd"] == pytest.approx(24 * p["per_run_usd"])


def test_a_scenarios_small_cost_keeps_its_digits_in_the_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    """``dumont test lifecycle`` printed ``cost 0.000 USD``: the figures block of the scenarios."""
    pytester.makeconftest('pytest_plugins = ["pytest_dumont.scenarios.conftest"]\n')
    pytester.makepyfile("""
        def test_cost(scenario_figures):
            scenario_figures("cost", 0.0000465, "USD (billed estimate)")
            scenario_figures("boot to SSH", 2.5, "s")
    """)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*cost*0.0000465 USD (billed estimate)", "*boot to SSH*2.500 s"])
