"""The one way a phase is timed (``TimedPhase``) and the one way a test is handed an instance (``hand_over``)."""

from __future__ import annotations

import pytest

from pytest_dumont.clock import ManualClock
from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming, TimedPhase
from pytest_dumont.vast.models import Offer


def record() -> InstanceRecord:
    offer = Offer.from_api({"id": 1, "gpu_name": "RTX 4090", "dph_base": 0.3, "storage_cost": 0.1, "disk_space": 50})
    return InstanceRecord(
        instance_id=7, label="dumont-x-1", offer=offer, disk_gb=20, search_started_at=0.0, created_at=1.0
    )


def test_a_step_that_ends_normally_is_one_passed_phase_from_its_start_to_its_end():
    clock, phases = ManualClock(10.0), []
    with TimedPhase(phases, "wait_ssh", clock, 7):
        clock.advance(2.5)
    assert phases == [PhaseTiming("wait_ssh", 10.0, 2.5, "passed", 7, "provision")]


def test_a_step_that_raises_is_a_failed_phase_and_the_error_goes_on():
    clock, phases = ManualClock(), []

    def interrupted_wait() -> None:
        with TimedPhase(phases, "wait_running", clock, 7):
            clock.advance(1.0)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_wait()
    assert [(p.name, p.duration, p.outcome) for p in phases] == [("wait_running", 1.0, "failed")]


def test_a_step_that_failed_without_raising_is_marked_by_its_caller():
    clock, phases = ManualClock(), []
    with TimedPhase(phases, "$ exit 3", clock, 7, kind="command", test="t.py::test_a", depth=1) as phase:
        phase.outcome = "failed"  # a run(..., warn=True) whose Result failed
    (timing,) = phases
    assert (timing.outcome, timing.kind, timing.test, timing.depth) == ("failed", "command", "t.py::test_a", 1)


def test_a_step_begun_before_its_record_existed_ends_once_at_the_time_given():
    clock, phases = ManualClock(5.0), []
    phase = TimedPhase(phases, "adopt", clock, 7, started=2.0)
    clock.advance(10.0)
    assert phase.end(at=6.0) == PhaseTiming("adopt", 2.0, 4.0, "passed", 7)
    assert phase.end() is phases[0] and len(phases) == 1


def test_hand_over_holds_the_instance_for_the_test_until_the_hold_is_closed():
    r = record()
    hold = r.hand_over("t.py::test_a", 12.0, waited=3.0)
    assert r.holds == [Hold("t.py::test_a", 12.0, None, 3.0)] and r.tests == ["t.py::test_a"]
    hold.close(20.0)
    hold.close(25.0)
    assert r.holds[0].ended == 20.0
