"""The repository's own cassettes: the seed journey replays with the network blocked and without waiting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SEED_CASSETTE = next((REPO / "cassettes" / "_provisioning").glob("rtx-4090-*.yaml"))


def copy_journey(pytester: pytest.Pytester) -> None:
    shutil.copy(REPO / "examples" / "seed_journey" / "test_seed_journey.py", pytester.path)
    shutil.copytree(REPO / "cassettes", pytester.path / "cassettes")


def test_the_seed_journey_replays_offline_without_waiting(pytester: pytest.Pytester, no_network_no_sleep: list[object]):
    copy_journey(pytester)
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert no_network_no_sleep == []
    recorded = yaml.safe_load(SEED_CASSETTE.read_text())
    assert recorded["recorded_with"]["emulator_profile"] == "seed"
    result.stdout.fnmatch_lines(
        [
            "*dumont: 4 test(s) replayed from *cassettes; timings shown are the recorded ones*",
            "*pytest-dumont (replay)*",
            f"*wait for SSH * {recorded['ssh_ready_seconds']:.2f} *",
            "*status: unknown 0.0s -> loading * -> running *",
        ]
    )


def test_the_seed_journey_took_the_seed_timeline_when_recorded():
    """The cassette holds the seed's boot: about a minute to running, polled many times in order."""
    recorded = yaml.safe_load(SEED_CASSETTE.read_text())
    polls = [
        i for i in recorded["interactions"] if i["request"]["method"] == "GET" and "/instances/" in i["request"]["uri"]
    ]
    statuses = [json.loads(p["response"]["body"]["string"])["instances"] for p in polls]
    assert len(polls) > 10
    assert any(s and s.get("actual_status") == "loading" for s in statuses)
    assert statuses[-1] is None  # the destroy's confirmation: the API says null


def test_cassettes_beside_the_test_module_replay_too(pytester: pytest.Pytester):
    """pytest-recording keeps cassettes in a folder beside the test module: replay looks there after cassettes/."""
    (pytester.path / "tests").mkdir()
    shutil.copy(REPO / "examples" / "seed_journey" / "test_seed_journey.py", pytester.path / "tests")
    shutil.copytree(REPO / "cassettes", pytester.path / "tests" / "cassettes")
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=4)
    assert not (pytester.path / "cassettes").exists()
    result.stdout.fnmatch_lines(["*dumont: 4 test(s) replayed from *"])


def test_replay_runs_under_xdist_and_recording_there_is_a_usage_error(pytester: pytest.Pytester):
    copy_journey(pytester)
    replay = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=4)
    record = pytester.runpytest_subprocess("-n", "2", "--dumont-mode=emulator", "--dumont-record-mode=rewrite")
    assert record.ret == pytest.ExitCode.USAGE_ERROR
    record.stderr.fnmatch_lines(["*recording cassettes under pytest-xdist is not supported*-n 0 or -p no:xdist*"])
