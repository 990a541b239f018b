"""Interruptible rentals outbid through the emulator's control endpoint, as real pytest runs: the test that held the
instance (or its boot) gets ``InstancePreempted``, the instance is destroyed, the next test rents afresh, and the
report shows the preemption in the timeline and in GPU billing."""

from __future__ import annotations

import json

import pytest

from pytest_dumont.emulator import Faults

OUTBID = """
import os

import requests


def outbid(instance_id, min_bid=None):
    url = f"{os.environ['VAST_URL']}/_emulator/instances/{instance_id}/outbid/"
    body = {} if min_bid is None else {"min_bid": min_bid}
    requests.post(url, json=body, timeout=10).raise_for_status()


def destroyed(instance_id):
    every = requests.get(f"{os.environ['VAST_URL']}/_emulator/instances/", timeout=10).json()["instances"]
    return next(i for i in every if i["id"] == instance_id)["destroyed"]
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator) -> list[str]:
    """The inner run's arguments, against ``vast_emulator`` (its URL in $VAST_URL for the outbid helper)."""
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    monkeypatch.setenv("VAST_URL", vast_emulator.url)
    pytester.makepyfile(outbid=OUTBID)
    return ["--dumont-mode=emulator", f"--dumont-api-url={vast_emulator.url}", "-p", "no:randomly"]


def report_of(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "dumont.json").read_text())


def test_an_instance_outbid_during_a_test_fails_it_by_name_and_the_next_test_rents_afresh(
    pytester, inner, vast_emulator
):
    pytester.makepyfile(
        test_held="""
        import pytest
        from outbid import outbid

        pytestmark = pytest.mark.dumont_offer(bid=0.2)
        HELD = []

        def test_held(vast_gpu, ssh_session):
            HELD.append(vast_gpu.id)
            outbid(vast_gpu.id)
            ssh_session.run("true")  # the container stopped: the connection is gone

        def test_next(vast_gpu, ssh_session):
            assert vast_gpu.id not in HELD
            assert ssh_session.run("echo up", hide=True).stdout.strip() == "up"
        """
    )
    result = pytester.runpytest(*inner, "--dumont-json=dumont.json")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*InstancePreempted: interruptible instance * (bid $0.2000/h) was preempted while "
            "test_held.py::test_held held it: Vast.ai stopped it for a higher bid (actual_status exited, "
            "intended_status stopped, status_msg 'Instance stopped: outbid by a higher bid*'); it has been "
            "destroyed. Its machine's minimum bid is now $0.2510/h: bid more (dumont_offer(bid=...) or --dumont-bid) "
            "or rent on-demand*",
            "the test's own error: *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "instance *  1x RTX 4090  $0.2*/h (interruptible, bid $0.2000/h)*",
            "  status: * -> running * -> exited *",
            "FAILED test_held.py::test_held - *InstancePreempted*",
        ]
    )
    first, second = vast_emulator.world.history()
    assert first["destroyed"] and second["destroyed"]
    held = next(e for e in report_of(pytester)["instances"] if e["instance_id"] == first["id"])
    assert held["failure"].startswith("InstancePreempted: interruptible instance")
    assert held["cost"]["bid"] == held["cost"]["dph_base"] == 0.2  # billed at the bid, not the on-demand price
    stop = held["timeline"][-1]
    assert stop["status"] == "exited" and "outbid" in stop["status_msg"]
    # GPU billing stops where the timeline shows the preemption, before the destroy that follows it.
    ((_start, end),) = held["gpu_spans"]
    assert end == pytest.approx(held["times"]["created_at"] + stop["at"], abs=1e-9)
    assert end < held["times"]["billing_ended_at"]


def test_a_test_that_passed_before_the_preemption_gets_it_at_teardown(pytester, inner, vast_emulator):
    pytester.makepyfile(
        test_quiet="""
        import pytest
        from outbid import outbid

        @pytest.mark.dumont_offer(bid=0.2)
        def test_quiet(vast_gpu):
            outbid(vast_gpu.id)
        """
    )
    result = pytester.runpytest(*inner)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_quiet.py::test_quiet - *InstancePreempted*"])
    assert vast_emulator.world.live_ids() == []


def test_an_instance_outbid_while_it_boots_is_destroyed_and_another_offer_rented(pytester, inner, vast_emulator):
    pytester.makeconftest(
        """
        from outbid import outbid

        CREATED = []

        def pytest_dumont_instance_created(instance):
            CREATED.append(instance["instance_id"])
            if len(CREATED) == 1:
                outbid(instance["instance_id"])  # before it runs: the boot wait sees it stopped
        """
    )
    pytester.makepyfile(
        test_boot="""
        import pytest

        @pytest.mark.dumont_offer(bid=0.2)
        def test_boot(vast_gpu):
            assert vast_gpu.ssh_port
        """
    )
    result = pytester.runpytest(*inner, "--dumont-json=dumont.json")
    result.assert_outcomes(passed=1)
    first, second = vast_emulator.world.history()
    assert first["destroyed"] and second["destroyed"]
    entry = next(e for e in report_of(pytester)["instances"] if e["instance_id"] == first["id"])
    assert "was preempted while it booted" in entry["failure"]
    assert entry["cost"]["gpu_usd"] == 0  # never ran


def test_a_factory_instance_outbid_is_named_and_a_stop_the_test_asked_for_is_not(pytester, inner, vast_emulator):
    pytester.makepyfile(
        test_factory="""
        import pytest
        from outbid import outbid

        pytestmark = pytest.mark.dumont_offer(bid=0.2)

        def test_outbid(dumont_instance_factory):
            taken = dumont_instance_factory()
            outbid(taken.id)
            taken.connection.run("true")

        def test_stopped_on_purpose(dumont_instance_factory):
            paused = dumont_instance_factory()
            dumont_instance_factory.stop(paused)
        """
    )
    result = pytester.runpytest(*inner)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*InstancePreempted: *was preempted while test_factory.py::test_outbid held it*",
            "FAILED test_factory.py::test_outbid - *InstancePreempted*",
        ]
    )
    assert vast_emulator.world.live_ids() == []


def test_a_factory_instance_outbid_while_stopped_is_named_at_its_start_and_destroyed_at_once(
    pytester, inner, vast_emulator
):
    pytester.makepyfile(
        test_paused="""
        import pytest
        from outbid import destroyed, outbid

        @pytest.mark.dumont_offer(bid=0.2)
        def test_paused(dumont_instance_factory):
            paused = dumont_instance_factory()
            dumont_instance_factory.stop(paused)
            dumont_instance_factory.start(paused)  # not outbid: it runs again
            assert paused.connection.run("echo again", hide=True).stdout.strip() == "again"
            dumont_instance_factory.stop(paused)
            outbid(paused.id, min_bid=0.3)
            try:
                dumont_instance_factory.start(paused)
            finally:
                print("destroyed at once:", destroyed(paused.id))
        """
    )
    result = pytester.runpytest(*inner, "--dumont-json=dumont.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*InstancePreempted: interruptible instance * (bid $0.2000/h) was preempted while it was stopped: a higher "
            "bid took its machine and Vast.ai refused to start it again (bid_too_low: Your bid $0.2000/h is below "
            "the min bid $0.3000/h.); it has been destroyed. Its machine's minimum bid is now $0.3000/h: bid more "
            "(dumont_offer(bid=...) or --dumont-bid) or rent on-demand (no bid) for tests that must not be interrupted",
            "destroyed at once: True",
        ]
    )
    (paused,) = vast_emulator.world.history()
    entry = next(e for e in report_of(pytester)["instances"] if e["instance_id"] == paused["id"])
    assert entry["failure"].startswith("InstancePreempted: interruptible instance")
    assert "outbid" in entry["timeline"][-1]["status_msg"]  # the stop Vast reported, seen before the destroy


BIDDING = """
import pytest

@pytest.mark.dumont_offer(bid=0.2)
def test_bidding(vast_gpu):
    assert vast_gpu.ssh_port
"""


def test_a_bid_refused_at_create_destroys_the_stopped_instance_and_rents_the_next_offer(pytester, inner, vast_emulator):
    vast_emulator.world.set_faults(Faults(create_faults=["outbid"]))  # a higher bid between search and create
    pytester.makepyfile(test_bidding=BIDDING)
    result = pytester.runpytest(*inner, "--dumont-json=dumont.json")
    result.assert_outcomes(passed=1)
    refused, rented = vast_emulator.world.history()
    assert refused["destroyed"] and rented["destroyed"]
    assert refused["offer_id"] != rented["offer_id"]
    entry = next(e for e in report_of(pytester)["instances"] if e["instance_id"] == refused["id"])
    assert entry["failure"].startswith(
        f"BidTooLow: Vast.ai refused the bid $0.2000/h for offer {refused['offer_id']}: its machine's minimum bid "
        "is now $0.2510/h"
    )
    assert entry["cost"]["gpu_usd"] == 0  # it never ran


def test_a_bid_refused_at_every_offer_tried_says_so_and_leaves_nothing_rented(pytester, inner, vast_emulator):
    vast_emulator.world.set_faults(Faults(create_faults=["outbid"]))
    pytester.makepyfile(test_bidding=BIDDING)
    result = pytester.runpytest(*inner, "--dumont-offer-attempts=1")
    result.assert_outcomes(errors=1)
    (refused,) = vast_emulator.world.history()
    result.stdout.fnmatch_lines(
        [
            "*OffersExhausted: gave up after 1 offer(s); every instance made was destroyed:",
            f"*1. BidTooLow: Vast.ai refused the bid $0.2000/h for offer {refused['offer_id']}: its machine's minimum "
            "bid is now $0.2510/h, raised by a higher bid after the search (bid_too_low: Your bid $0.2000/h is below "
            f"the minimum bid $0.2510/h: the instance was created stopped.); the stopped instance {refused['id']} it "
            "made anyway has been destroyed. Bid more (dumont_offer(bid=...) or --dumont-bid) or rent on-demand "
            "(no bid)",
        ]
    )
    assert refused["destroyed"]
    assert vast_emulator.world.live_ids() == []


def test_a_bid_that_is_not_a_price_is_refused_before_anything_is_rented(pytester, inner, vast_emulator):
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.dumont_offer(bid="cheap")
        def test_bad(vast_gpu):
            pass
        """
    )
    result = pytester.runpytest(*inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*dumont_offer(bid='cheap'): bid must be a number*interruptible*"])
    result = pytester.runpytest(*inner, "--dumont-bid=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dumont-bid='-1': must be a number above 0*"])
    assert vast_emulator.world.history() == []
