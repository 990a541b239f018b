"""The scenario library replays from the recordings shipped in the package: from a directory with no cassette of its
own, offline, without a real sleep, with the recorded figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import pytest_dumont.scenarios

SHIPPED = Path(pytest_dumont.scenarios.__file__).parent / "cassettes"


def test_the_shipped_recordings_were_made_against_the_seed_profile():
    rentals = sorted(SHIPPED.rglob("*.rental-*.yaml"))
    assert len(rentals) == 7  # lifecycle 1, failover 2, large artifact 2, hibernation 1, inference 1
    for path in rentals:
        assert yaml.safe_load(path.read_text())["recorded_with"]["emulator_profile"] == "seed", path


def test_every_scenario_replays_offline_without_waiting(pytester: pytest.Pytester, no_network_no_sleep: list[object]):
    result = pytester.runpytest("--pyargs", "pytest_dumont.scenarios", "-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    assert no_network_no_sleep == []
    assert not (pytester.path / "cassettes").exists()
    result.stdout.fnmatch_lines(
        [
            "*test_failover.py::test_failover",
            "*snapshot up (instance->store)*MB/s",
            "*test_inference.py::test_inference_throughput",
            "*tokens per second*tok/s",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            f"*dumont: 5 test(s) replayed from {SHIPPED}; timings shown are the recorded ones*",
            "*pytest-dumont (replay): 7 instance(s)*",
        ]
    )


def test_the_figures_on_replay_are_the_recorded_ones(pytester: pytest.Pytester):
    """Two replays agree to the digit: every figure comes from the cassettes, none from this machine's speed."""

    def figures() -> list[str]:
        result = pytester.runpytest("--pyargs", "pytest_dumont.scenarios.test_inference", "-p", "no:xdist")
        result.assert_outcomes(passed=1)
        return [line for line in result.outlines if "tok/s" in line or "time to first token" in line]

    first = figures()
    assert len(first) == 2 and first == figures()
