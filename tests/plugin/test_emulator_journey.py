"""The seed's journey and the teardown guarantees, as real pytest runs against the bundled emulator."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "seed_journey" / "test_seed_journey.py"


def external(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, emulator) -> list[str]:
    """Arguments that point an inner run at ``emulator``, so this test can look at the emulator afterwards."""
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}"]


def test_seed_journey_passes_and_reports_phases_and_cost(pytester: pytest.Pytester):
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest("--dumont-mode=emulator", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*pytest-dumont (emulator): 1 instance(s), $* billed estimate*",
            "instance * 1x RTX 4090  $0.*/h*offer *label dumont-*",
            "  phase * seconds * % * cost",
            "  search offers *",
            "  create instance *",
            "  wait for running *",
            "  wait for SSH *",
            "  create file *",
            "  verify file *",
            "  nvidia-smi and df *",
            "  destroy instance *",
            "  total * 100.0% * $*",
            "  status: * -> running *",
            "  cost: $* billed estimate (GPU $*/h x * s running + storage $*/h x * s existing); $* simple*",
            "  destroyed: yes (confirmed)",
            "all instances destroyed",
        ]
    )


def test_tests_that_ask_alike_share_one_instance(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("""
        def test_a(vast_gpu): pass
        def test_b(vast_gpu): pass
        def test_c(ssh_session): assert ssh_session.run("true").ok
    """)
    pytester.runpytest(*external(pytester, monkeypatch, vast_emulator)).assert_outcomes(passed=3)
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]


def test_a_marker_asking_for_another_gpu_gets_its_own_instance(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("""
        import pytest
        def test_default(vast_gpu):
            assert vast_gpu.gpu_name == "RTX 4090"
        @pytest.mark.dumont_offer(gpu="RTX 3090", max_dph=1.0)
        def test_3090(vast_gpu, ssh_session):
            assert vast_gpu.gpu_name == "RTX 3090"
            out = ssh_session.run("nvidia-smi --query-gpu=name --format=csv,noheader", hide=True).stdout
            assert out.strip() == "NVIDIA GeForce RTX 3090"
    """)
    pytester.runpytest(*external(pytester, monkeypatch, vast_emulator)).assert_outcomes(passed=2)
    assert sorted(r["destroyed"] for r in vast_emulator.world.history()) == [True, True]


def test_a_failing_test_still_destroys_its_instance(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("""
        def test_boom(vast_gpu):
            raise RuntimeError("the test broke")
    """)
    result = pytester.runpytest(*external(pytester, monkeypatch, vast_emulator))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*all instances destroyed*"])
    assert vast_emulator.world.live_ids() == []
    assert len(vast_emulator.world.history()) == 1


def test_no_matching_offer_errors_every_test_once_and_rents_nothing(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("""
        def test_a(vast_gpu): pass
        def test_b(vast_gpu): pass
    """)
    result = pytester.runpytest(*external(pytester, monkeypatch, vast_emulator), "--dumont-max-dph=0.01")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*NoMatchingOffer: no Vast.ai offer matches 1x RTX 4090, at most $0.01/h*",
            "*costs more than $0.01/h (cheapest is $*",
        ]
    )
    assert vast_emulator.world.history() == []


def test_an_instance_that_exits_is_reported_and_destroyed(pytester, monkeypatch, make_emulator):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["exits"]))
    pytester.makepyfile("def test_a(vast_gpu): pass\n")
    result = pytester.runpytest(*external(pytester, monkeypatch, emulator), "--dumont-offer-attempts=1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*OffersExhausted*", "*will not boot: status exited*OCI runtime*"])
    assert emulator.world.live_ids() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_signal_during_a_test_destroys_the_instance(pytester, monkeypatch, vast_emulator, signum):
    pytester.makepyfile(f"""
        import os
        def test_killed(vast_gpu):
            os.kill(os.getpid(), {int(signum)})
            raise AssertionError("the signal should have interrupted the test")
    """)
    result = pytester.runpytest_subprocess(*external(pytester, monkeypatch, vast_emulator))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*KeyboardInterrupt*received {signal.Signals(signum).name}*"])
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]


def test_nothing_secret_reaches_the_output(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("""
        def test_show(vast_gpu):
            print(repr(vast_gpu), vars(vast_gpu.record))
            raise AssertionError(repr(vast_gpu))
    """)
    result = pytester.runpytest(*external(pytester, monkeypatch, vast_emulator), "-s")
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert vast_emulator.api_key not in output
    assert "PRIVATE KEY" not in output


def test_a_rejected_key_names_the_variable_and_never_the_value(pytester, monkeypatch, vast_emulator):
    pytester.makepyfile("def test_a(vast_gpu): pass\n")
    monkeypatch.setenv("VAST_API_KEY", "rejected-key-0123456789")
    result = pytester.runpytest("--dumont-mode=emulator", f"--dumont-api-url={vast_emulator.url}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*AuthenticationFailed*HTTP 401 auth_error*rejected the key in VAST_API_KEY*"])
    assert "rejected-key-0123456789" not in result.stdout.str()
    assert vast_emulator.world.history() == []
