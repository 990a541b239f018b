"""Every scenario as users run it (``pytest --pyargs pytest_dumont.scenarios.<name>``) against an emulator this test
can inspect afterwards: each passes, reports its figures, and leaves no instance behind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.conftest import S3Server, point_at_s3


def run_scenario(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, emulator: Any, name: str, *args: str):
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    monkeypatch.setenv("DUMONT_ARTIFACT_MB", "2")  # the large-artifact scenario, small in CI
    return pytester.runpytest(
        "--pyargs",
        f"pytest_dumont.scenarios.test_{name}",
        "--dumont-mode=emulator",
        f"--dumont-api-url={emulator.url}",
        "--dumont-prewarm=off",
        "-p",
        "no:randomly",
        *args,
    )


def assert_all_destroyed(emulator: Any, rented: int) -> None:
    history = emulator.world.history()
    assert len(history) == rented
    assert all(row["destroyed"] for row in history)
    assert emulator.world.live_ids() == []


@pytest.mark.parametrize(
    ("name", "rented", "figures"),
    [
        ("lifecycle", 1, ["  boot to SSH * s", "  cost * USD (billed estimate)"]),
        (
            "failover",
            2,
            [
                "  failover total * s",
                "    stop instance 1 * s",
                "    provision instance 2 * s",
                "    restore * s",
                "    verify * s",
                "  snapshot size * 2.0* MB",
                "  snapshot up (instance->store) * MB/s",
                "  restore down (store->instance) * MB/s",
            ],
        ),
        (
            "large_artifact",
            2,
            ["  artifact * 2.000 MB", "  snapshot time per GB * s/GB", "  restore time per GB * s/GB"],
        ),
        ("hibernation", 1, ["  idle window * 0.300 s", "  idle detected after * s of idle"]),
        ("inference", 1, ["  model dumont-tokens * 96.000 tokens", "  tokens per second * tok/s", "  time to first*"]),
    ],
)
def test_scenario_passes_reports_its_figures_and_destroys_everything(
    pytester, monkeypatch, vast_emulator, name, rented, figures
):
    result = run_scenario(pytester, monkeypatch, vast_emulator, name)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*- dumont scenarios -*", f"*test_{name}.py::test_*", *figures])
    result.stdout.fnmatch_lines(["all instances destroyed"])
    assert_all_destroyed(vast_emulator, rented)


def test_failover_through_an_s3_store(pytester, monkeypatch, vast_emulator, s3_server: S3Server):
    point_at_s3(monkeypatch, s3_server)
    result = run_scenario(pytester, monkeypatch, vast_emulator, "failover")
    result.assert_outcomes(passed=1)
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_server.bucket)["Contents"])
    assert len(keys) == 2 and keys[0].endswith(".tar") and keys[1] == keys[0] + ".manifest.json"
    assert_all_destroyed(vast_emulator, 2)


def test_an_s3_store_with_bad_credentials_fails_before_renting_and_never_shows_the_secret(
    pytester, monkeypatch, vast_emulator, s3_server: S3Server
):
    secret = "not-the-secret-0123456789"
    point_at_s3(monkeypatch, s3_server, secret=secret)
    result = run_scenario(pytester, monkeypatch, vast_emulator, "failover")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*SnapshotStoreError: s3://dumont-snapshots at {s3_server.url} rejected the credentials*DUMONT_S3_SECRET*"]
    )
    assert secret not in result.stdout.str() + result.stderr.str()
    assert vast_emulator.world.history() == []


def test_the_large_artifact_sizes_come_from_the_environment(pytester, monkeypatch, vast_emulator):
    monkeypatch.setenv("DUMONT_ARTIFACT_MB", "1,3")
    result = pytester.runpytest("--pyargs", "pytest_dumont.scenarios.test_large_artifact", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_large_artifact[[]1MB[]]", "*test_large_artifact[[]3MB[]]"])
