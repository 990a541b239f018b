"""pytest-xdist, as users run it: one instance for the run (shared) or one per worker, and nothing leaks either way."""

from __future__ import annotations

from typing import Any

import pytest

GPU_TESTS = """
    def test_a(ssh_session): assert ssh_session.run("true").ok
    def test_b(ssh_session): assert ssh_session.run("true").ok
    def test_c(vast_gpu): assert vast_gpu.ssh_port
    def test_d(vast_gpu): assert vast_gpu.ssh_port
"""


def test_shared_mode_rents_one_instance_for_every_worker_and_destroys_it(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    pytester.makepyfile(GPU_TESTS)
    result = pytester.runpytest(*inner(vast_emulator, "-n", "2", "--dumont-json=r.json"))
    result.assert_outcomes(passed=4)
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]
    result.stdout.fnmatch_lines(["dumont xdist: shared, 1 instance for 2 workers*", "*all instances destroyed*"])
    import json

    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["totals"]["instances"] == 1  # counted once, on the controller
    assert sorted(t["nodeid"].split("::")[1] for t in doc["tests"]) == ["test_a", "test_b", "test_c", "test_d"]


def test_shared_mode_destroys_the_instance_once_its_last_test_has_finished(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    gpu_id = pytester.path / "gpu-id"
    pytester.makepyfile(f"""
        import os, time, pytest, requests

        @pytest.mark.xdist_group("gpu")
        def test_gpu(vast_gpu):
            open({str(gpu_id)!r}, "w").write(str(vast_gpu.id))

        @pytest.mark.xdist_group("cpu")
        def test_cpu_tests_run_on_without_the_instance():
            deadline = time.monotonic() + 60
            while not os.path.exists({str(gpu_id)!r}):
                assert time.monotonic() < deadline, "the GPU test never ran"
                time.sleep(0.02)
            url = os.environ["INNER_API"] + "/api/v0/instances/" + open({str(gpu_id)!r}).read() + "/?owner=me"
            auth = {{"Authorization": "Bearer " + os.environ["VAST_API_KEY"]}}
            while requests.get(url, headers=auth, timeout=5).json()["instances"] is not None:
                assert time.monotonic() < deadline, "the instance was kept while only CPU tests were left"
                time.sleep(0.02)
    """)
    result = pytester.runpytest(*inner(vast_emulator, "-n", "2", "--dist", "loadgroup"))
    result.assert_outcomes(passed=2)
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]
    result.stdout.fnmatch_lines(["*destroyed: yes (confirmed)*", "*all instances destroyed*"])


def test_shared_mode_without_a_gpu_test_gives_the_instance_up_after_collection(
    pytester: pytest.Pytester, inner: Any, make_emulator: Any
) -> None:
    slow = make_emulator(profile="seed", time_factor=0.05)  # about 4 s to boot: far longer than the workers' start
    pytester.makepyfile("def test_cpu_a(): pass\ndef test_cpu_b(): pass\n")
    result = pytester.runpytest(*inner(slow, "-n", "2"))
    result.assert_outcomes(passed=2)
    assert slow.world.live_ids() == []
    if slow.world.history():  # given up while it booted (or before its create, then nothing was rented)
        (row,) = slow.world.history()
        assert row["destroyed"] and row["ssh_up_at"] is None  # never reached SSH: given up while it booted
        result.stdout.fnmatch_lines(["*no collected test uses the shared instance: provisioning in the background*"])


def test_per_worker_mode_gives_each_worker_its_own_instance(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    pytester.makepyfile(GPU_TESTS)
    args = inner(vast_emulator, "-n", "2", "--dumont-xdist=per-worker")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=4)
    history = vast_emulator.world.history()
    assert len(history) == 2  # each worker prewarms its own on collecting GPU tests
    assert all(row["destroyed"] for row in history)
    result.stdout.fnmatch_lines(["dumont xdist: per-worker, 2 workers x $0.50/h = at most $1.00/h"])


def test_a_crashed_worker_neither_takes_the_shared_instance_from_the_others_nor_leaks_it(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    crashed = pytester.path / "crashed"
    pytester.makepyfile(f"""
        import os, time, pytest

        @pytest.mark.xdist_group("crash")
        def test_crash(ssh_session):
            assert ssh_session.run("true").ok
            open({str(crashed)!r}, "w").close()
            os._exit(1)

        @pytest.mark.xdist_group("survivor")
        def test_after_the_crash(ssh_session):
            deadline = time.monotonic() + 60
            while not os.path.exists({str(crashed)!r}):  # the other worker is gone before this goes on
                assert time.monotonic() < deadline, "the other worker never crashed"
                time.sleep(0.02)
            assert ssh_session.run("echo still here").stdout.strip() == "still here"
    """)
    result = pytester.runpytest(*inner(vast_emulator, "-n", "2", "--dist", "loadgroup", "--max-worker-restart=0"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*worker*crashed while running*test_crash*"])
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]
    assert vast_emulator.world.live_ids() == []


def test_shared_mode_reports_a_failed_provisioning_on_every_worker_and_rents_nothing(
    pytester: pytest.Pytester, inner: Any, vast_emulator: Any
) -> None:
    pytester.makepyfile(GPU_TESTS)
    result = pytester.runpytest(*inner(vast_emulator, "-n", "2", "--dumont-max-dph=0.01"))
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*the run's shared instance failed: NoMatchingOffer*"])
    assert vast_emulator.world.history() == []


def test_a_bad_xdist_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest("--dumont-xdist=everyone")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dumont-xdist='everyone': must be one of shared, per-worker*"])
