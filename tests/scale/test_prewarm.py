"""Prewarming: the instance boots while the other tests run; failures surface at the first GPU test; nothing leaks."""

from __future__ import annotations

from typing import Any

import pytest

# A CPU test that runs before any GPU test and waits (bounded) until the emulator lists an instance: it passes only
# if provisioning started in the background, before the first GPU test asked for it.
SEES_AN_INSTANCE = """
    import os, time, requests

    def test_0_cpu_sees_the_instance_booting():
        url = os.environ["INNER_API"] + "/api/v1/instances/"
        headers = {"Authorization": "Bearer " + os.environ["VAST_API_KEY"]}
        deadline = time.monotonic() + 30
        while not requests.get(url, headers=headers, timeout=5).json()["instances"]:
            assert time.monotonic() < deadline, "no instance was rented before the first GPU test"
            time.sleep(0.02)
        with open("cpu_done", "w") as f:
            f.write(repr(time.time()))
"""


def test_provisioning_starts_before_the_first_gpu_test(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    pytester.makepyfile(
        SEES_AN_INSTANCE
        + """
    def test_1_gpu(ssh_session):
        with open("gpu_started", "w") as f:
            f.write(repr(time.time()))
        assert ssh_session.run("true").ok
    """
    )
    result = pytester.runpytest(*inner(vast_emulator, "-p", "no:xdist"))
    result.assert_outcomes(passed=2)
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]
    assert row["created_at"] < float((pytester.path / "gpu_started").read_text())


def test_with_prewarming_off_nothing_is_rented_before_a_gpu_test_asks(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    pytester.makepyfile("""
        def test_0_cpu(request):
            pass
        def test_1_gpu(vast_gpu):
            pass
    """)
    pytester.makeconftest("""
        import json, os, urllib.request
        def pytest_runtest_setup(item):
            if item.name == "test_0_cpu":
                req = urllib.request.Request(
                    os.environ["INNER_API"] + "/api/v1/instances/",
                    headers={"Authorization": "Bearer " + os.environ["VAST_API_KEY"]},
                )
                assert json.load(urllib.request.urlopen(req))["instances"] == []
    """)
    result = pytester.runpytest(*inner(vast_emulator, "-p", "no:xdist", "--dumont-prewarm=off"))
    result.assert_outcomes(passed=2)
    assert [row["destroyed"] for row in vast_emulator.world.history()] == [True]


def test_a_background_failure_is_reported_at_the_first_gpu_test(
    pytester: pytest.Pytester, inner: Any, make_emulator: Any
) -> None:
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["exits"]))
    pytester.makepyfile("""
        def test_0_cpu(): pass
        def test_1_gpu(vast_gpu): pass
        def test_2_gpu(vast_gpu): pass
    """)
    args = inner(emulator, "-p", "no:xdist", "--dumont-offer-attempts=1")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1, errors=2)
    expected = [
        "*ERROR at setup of test_1_gpu*",
        "*OffersExhausted: gave up after 1 offer*",
        "*will not boot: status exited*",
    ]
    result.stdout.fnmatch_lines(expected)
    (row,) = emulator.world.history()  # rented once in the background, destroyed, not retried per test
    assert row["destroyed"]


SKIPPED_AT_SETUP = "import pytest\n@pytest.mark.skipif(True, reason='r')\ndef test_gpu(vast_gpu): ...\n"


@pytest.mark.parametrize(
    ("source", "args", "rented"),
    [
        ("def test_cpu(): pass\ndef test_gpu(vast_gpu): pass\n", ("-k", "cpu"), 0),
        ("import pytest\ndef test_cpu(): pass\n@pytest.mark.skip\ndef test_gpu(vast_gpu): pass\n", (), 0),
        # skipif is decided at setup, after prewarming started: cancelled at the end, whatever it had rented
        (SKIPPED_AT_SETUP, (), 1),
    ],
    ids=["deselected", "skipped", "skipped-at-setup"],
)
def test_when_no_gpu_test_runs_after_all_nothing_is_left(
    pytester: pytest.Pytester,
    inner: Any,
    vast_emulator: Any,
    source: str,
    args: tuple[str, ...],
    rented: int,
) -> None:
    pytester.makepyfile(source)
    result = pytester.runpytest(*inner(vast_emulator, "-p", "no:xdist", *args))
    assert result.ret == pytest.ExitCode.OK
    history = vast_emulator.world.history()
    assert len(history) <= rented  # a boot still in flight at the end is cancelled: rented or not, by timing
    assert all(row["destroyed"] for row in history)
    assert vast_emulator.world.live_ids() == []


def test_replay_prewarms_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_gpu(vast_gpu): pass
        def test_zz_nothing_was_opened(request):
            assert not request.config.pluginmanager.has_plugin("dumont-prewarm")
    """)
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:randomly", "--dumont-api-url=http://127.0.0.1:9")
    result.assert_outcomes(passed=1, skipped=1)  # no cassette: skipped, and no pool was opened before it


def test_tests_renting_their_own_instances_are_not_prewarmed_for(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    # A prewarmed shared instance would sit idle (and bill) while these tests rent their own.
    pytester.makepyfile("""
        def test_0_cpu():
            pass
        def test_1_own_instance(dumont_instance_factory):
            instance = dumont_instance_factory()
            assert instance.connection.run("true", hide=True).ok
    """)
    result = pytester.runpytest(*inner(vast_emulator, "-p", "no:xdist"))
    result.assert_outcomes(passed=2)
    (row,) = vast_emulator.world.history()  # the factory's instance only
    assert row["destroyed"]


@pytest.mark.parametrize(("prewarm", "read"), [("on", True), ("off", False)])
def test_prewarming_reads_the_gpu_facts_before_the_first_gpu_test(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any, prewarm: str, read: bool
) -> None:
    # The provisioning thread reads nvidia-smi and df once SSH answers, off the tests' path; without prewarming only
    # ssh_session reads them, in the first test that asks for it.
    pytester.makepyfile(f"""
        def test_0_cpu():
            pass
        def test_1_gpu(vast_gpu):
            assert ("RTX 4090" in vast_gpu.record.facts.get("nvidia_smi", "")) is {read}
            assert bool(vast_gpu.record.facts.get("disk")) is {read}
    """)
    result = pytester.runpytest(*inner(vast_emulator, "-p", "no:xdist", f"--dumont-prewarm={prewarm}"))
    result.assert_outcomes(passed=2)
    assert [row["destroyed"] for row in vast_emulator.world.history()] == [True]
