"""Budgets, the per-test time limit and keep-on-failure, as real pytest runs against the emulator."""

from __future__ import annotations

import random
from typing import Any

import pytest
from polling import record_figure, wait_for

from pytest_dumont.safety.ledger_file import LedgerFile

# One machine at $36/h ($0.01 a second): big enough that a few seconds cost a measurable amount.
PRICEY = [
    {
        "id": 1,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "dph_base": 36.0,
        "storage_cost": 0.1,
        "disk_space": 100,
        "reliability": 0.99,
    }
]


def against(emulator, monkeypatch: pytest.MonkeyPatch, *extra: str) -> list[str]:
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", *extra]


def test_a_budget_below_the_cheapest_offer_refuses_before_renting(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("def test_a(vast_gpu): pass\n")
    result = pytester.runpytest(*against(vast_emulator, monkeypatch, "--dumont-budget=0.0001"))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*BudgetExceeded: no offer fits the budget; the cheapest: offer * projects $*"])
    assert vast_emulator.world.history() == []


def test_a_test_past_max_minutes_is_stopped_and_its_instance_destroyed(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("""
        import time
        def test_overruns(vast_gpu):
            time.sleep(120)
        def test_next_gets_a_fresh_instance(vast_gpu, ssh_session):
            assert ssh_session.run("true").ok
    """)
    result = pytester.runpytest_subprocess(*against(vast_emulator, monkeypatch, "--dumont-max-minutes=0.01"))
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*TestTimeExceeded: *test_overruns ran past --dumont-max-minutes=0.01 (0.6 s)*"])
    first, second = vast_emulator.world.history()
    assert first["destroyed"] and second["destroyed"]
    # The overrunning test's instance went before the session's end, while the next test's was still to come.
    assert first["destroyed_at"] < second["created_at"]


def test_the_budget_stops_a_session_before_it_is_passed(pytester, monkeypatch, make_emulator):
    emulator = make_emulator(market=PRICEY)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # the budget stop becomes a ::warning:: annotation
    tick = 0.2
    budget = 0.05  # five seconds of this machine
    pytester.makepyfile("""
        import time
        import pytest
        @pytest.mark.parametrize("n", range(12))
        def test_spends(vast_gpu, n):
            time.sleep(0.8)
    """)
    result = pytester.runpytest_subprocess(
        *against(emulator, monkeypatch, f"--dumont-budget={budget}", f"--dumont-poll-max={tick}"),
        "--dumont-max-dph=100",
        "--dumont-max-minutes=0.02",
        "--dumont-boot-timeout=1",
        "--dumont-ssh-timeout=1",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) >= 1
    result.stdout.fnmatch_lines(["*BudgetExceeded*", "*DUMONT WARNING: the session's spend reached $*"])
    result.stdout.fnmatch_lines(["::warning title=pytest-dumont budget::instances destroyed at the budget: *"])
    ledger = emulator.world.ledger()
    assert ledger["live"] == 0
    (row,) = ledger["instances"]
    assert ledger["total_cost"] <= budget + row["dph_total"] * tick / 3600.0
    record_figure("budget", budget=budget, billed=ledger["total_cost"], dph_total=row["dph_total"], tick=tick)


def test_keep_on_failure_keeps_the_instance_loudly_and_the_watchdog_spares_it(
    pytester, monkeypatch, vast_emulator, private_state
):
    pytester.makepyfile("""
        def test_fails(vast_gpu):
            assert False, "look at me"
    """)
    result = pytester.runpytest(*against(vast_emulator, monkeypatch, "--dumont-keep-on-failure"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DUMONT WARNING: KEPT instance * IT IS STILL BILLING*dumont reap --include-kept*"])
    (kept,) = vast_emulator.world.live_ids()
    ledger = LedgerFile(private_state / "ledger.json")
    wait_for(lambda: "done in" in next(private_state.glob("watchdog-*.log")).read_text(), what="the watchdog's end")
    assert vast_emulator.world.live_ids() == [kept]
    assert [(e.instance_id, e.state) for e in ledger.entries()] == [(kept, "kept")]


def test_without_keep_on_failure_a_failed_test_s_instance_is_destroyed(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("def test_fails(vast_gpu):\n    assert False\n")
    pytester.runpytest(*against(vast_emulator, monkeypatch)).assert_outcomes(failed=1)
    assert vast_emulator.world.live_ids() == []


HORIZON_S = 1.0 + 1.0 + 0.02 * 60  # what a rental is projected to cost before it is made: boot + SSH + max-minutes


def draw_budget_run(rng: random.Random) -> dict[str, Any]:
    dph_base = rng.choice((18.0, 36.0, 72.0))
    return {
        "dph_base": dph_base,
        # Above one rental's projection (or nothing is rented), below what the run would spend unchecked.
        "budget": round((dph_base + 0.1) * HORIZON_S / 3600.0 * rng.uniform(1.3, 4.0), 5),
        "tick": rng.choice((0.1, 0.2, 0.3)),
        "prewarm": rng.choice(("on", "off")),
    }


BUDGET_RUN = """
import time
import pytest

@pytest.mark.parametrize("n", range(24))
def test_spends(vast_gpu, n):
    time.sleep(0.8)
"""


@pytest.mark.parametrize("runs", [pytest.param(2, id="ci-slice"), pytest.param(40, id="full", marks=pytest.mark.chaos)])
def test_budget_hits_never_pass_the_budget_by_more_than_one_meter_interval(pytester, monkeypatch, make_emulator, runs):
    rng = random.Random(20261207)
    overshoots = []
    for run in range(runs):
        draw = draw_budget_run(rng)
        emulator = make_emulator(market=[{**PRICEY[0], "dph_base": draw["dph_base"]}])
        pytester.makepyfile(**{f"test_budget_run{run}": BUDGET_RUN})
        result = pytester.runpytest_subprocess(
            *against(emulator, monkeypatch, f"--dumont-budget={draw['budget']}", f"--dumont-poll-max={draw['tick']}"),
            f"test_budget_run{run}.py",
            f"--dumont-prewarm={draw['prewarm']}",
            "--dumont-max-dph=100",
            "--dumont-max-minutes=0.02",
            "--dumont-boot-timeout=1",
            "--dumont-ssh-timeout=1",
        )
        result.stdout.fnmatch_lines(["*DUMONT WARNING: the session's spend reached $*"])  # the budget was hit
        ledger = emulator.world.ledger()
        assert ledger["live"] == 0
        allowance = sum(row["dph_total"] for row in ledger["instances"]) * draw["tick"] / 3600.0
        overshoots.append((ledger["total_cost"] - draw["budget"]) / allowance)
        assert ledger["total_cost"] <= draw["budget"] + allowance, (draw, ledger["total_cost"], result.stdout.str())
        emulator.stop()
    record_figure("budget_campaign", runs=runs, worst_overshoot_in_intervals=max(overshoots), overshoots=overshoots)
