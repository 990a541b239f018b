"""Bad input to the scenarios' building blocks: each a clear failure naming the file or setting, nothing left rented."""

from __future__ import annotations

import pytest

from pytest_dumont.cli import main
from tests.scenarios.test_scenarios_in_emulator import assert_all_destroyed


def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, emulator, source: str):
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    pytester.makepyfile(source)
    return pytester.runpytest(
        "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "--dumont-prewarm=off", "-p", "no:randomly"
    )


def test_a_snapshot_with_a_flipped_byte_fails_verification_naming_the_file(pytester, monkeypatch, vast_emulator):
    result = run_inner(
        pytester,
        monkeypatch,
        vast_emulator,
        """
        from pytest_dumont.scenarios import LocalStore, restore, snapshot, verify

        def test_flipped(dumont_instance_factory, tmp_path):
            store = LocalStore(tmp_path)
            first = dumont_instance_factory()
            first.connection.run("mkdir -p /workspace/d && echo keep > /workspace/d/a.txt"
                                 " && printf 'MARKER-0123456789' > /workspace/d/b.bin", hide=True)
            manifest = snapshot(first.connection, ["/workspace/d"], store, key="s.tar")
            archive = store.path("s.tar")
            raw = bytearray(archive.read_bytes())
            raw[raw.index(b"MARKER-0123456789") + 7] ^= 0x01   # one bit of b.bin's content, tar headers intact
            archive.write_bytes(bytes(raw))
            second = dumont_instance_factory()
            restore(second.connection, manifest, store)
            verify(second.connection, manifest)
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*SnapshotMismatch: restored file /workspace/d/b.bin has MD5 *, the manifest says * (snapshot s.tar)"]
    )
    assert_all_destroyed(vast_emulator, 2)


def test_a_restore_into_a_full_disk_fails_naming_the_path(pytester, monkeypatch, vast_emulator):
    result = run_inner(
        pytester,
        monkeypatch,
        vast_emulator,
        """
        from pytest_dumont.scenarios import LocalStore, restore, snapshot

        def test_full(dumont_instance_factory, tmp_path):
            store = LocalStore(tmp_path)
            gpu = dumont_instance_factory()
            # A 1 MB disk in the instance's own mount namespace (the emulator runs it as root).
            gpu.connection.run("mkdir -p /workspace/full && mount -t tmpfs -o size=1m tmpfs /workspace/full", hide=True)
            gpu.connection.run("mkdir -p /workspace/d && head -c 3000000 /dev/urandom > /workspace/d/big.bin")
            manifest = snapshot(gpu.connection, ["/workspace/d"], store, key="big.tar")
            restore(gpu.connection, manifest, store, root="/workspace/full")
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*RestoreFailed: restore of snapshot big.tar into /workspace/full on the instance failed: no space left*"]
    )
    assert_all_destroyed(vast_emulator, 1)


def test_an_unknown_scenario_name_is_a_usage_error_listing_the_scenarios(capsys):
    assert main(["test", "failovr"]) == 2
    err = capsys.readouterr().err
    assert "no scenario named 'failovr'" in err
    assert "failover, hibernation, inference, large_artifact, lifecycle" in err


def test_dumont_test_runs_the_emulator_by_default_and_live_with_real(monkeypatch):
    from pytest_dumont.commands import test as command

    calls: list[list[str]] = []
    monkeypatch.setattr(command.subprocess, "call", lambda argv: calls.append(argv) or 0)
    assert main(["test", "failover", "-x"]) == 0
    assert main(["test", "hibernation", "--real"]) == 0
    assert calls[0][3:] == [
        "--pyargs",
        "pytest_dumont.scenarios.test_failover",
        "--dumont-mode=emulator",
        "--dumont-prewarm=off",
        "-x",
    ]
    assert calls[1][3:6] == ["--pyargs", "pytest_dumont.scenarios.test_hibernation", "-m"] and calls[1][6] == "real_gpu"


def test_the_report_names_the_gpu_that_ran_when_the_first_preference_has_no_offer(pytester, monkeypatch, vast_emulator):
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    pytester.makepyfile("def test_a(vast_gpu): assert vast_gpu.gpu_name == 'RTX 3090'\n")
    result = pytester.runpytest(
        "--dumont-mode=emulator",
        f"--dumont-api-url={vast_emulator.url}",
        "--dumont-gpu=RTX 9090,RTX 3090",
        "--dumont-max-dph=1.0",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["instance * 1x RTX 3090  $*/h*"])
    assert [row["gpu_name"] for row in vast_emulator.world.history()] == ["RTX 3090"]
