"""Instances a test rents itself (``dumont_instance_factory``), recorded against the emulator and replayed with no
emulator: each rental has its own cassette, byte streams and timed output replay with their recorded durations.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.cassettes.test_record_replay import recording_against

RENTING_MODULE = """
import os
import requests
from pytest_dumont.scenarios import LocalStore, restore, snapshot, verify


class Lines:
    def __init__(self, clock):
        self.clock, self.times = clock, []

    def write(self, text):
        self.times += [self.clock.now()] * text.count("\\n")
        return len(text)

    def flush(self):
        pass


def test_two_rentals(dumont_instance_factory, tmp_path):
    factory = dumont_instance_factory
    client = factory.pool.provisioner.client
    first = factory()
    first.connection.run("mkdir -p /workspace/d && echo small > /workspace/d/a.txt"
                         " && head -c 1500000 /dev/urandom > /workspace/d/big.bin", hide=True)
    store = LocalStore(tmp_path / "store")
    manifest = snapshot(first.connection, ["/workspace/d"], store, key="s.tar")
    factory.stop(first)
    assert "stopped" in (client.show_instance(first.id).intended_status, client.show_instance(first.id).cur_state)
    answer = requests.get(os.environ["EMULATOR_URL"] + "/api/v0/users/current/",
                          headers={"Authorization": "Bearer " + os.environ.get("K", "")})
    assert answer.status_code == 200
    second = factory()
    download = restore(second.connection, manifest, store)
    verify(second.connection, manifest)
    lines = Lines(factory.clock)
    second.connection.run("for i in 1 2 3; do echo $i; sleep 0.05; done", hide=True, out_stream=lines)
    gaps = [round(b - a, 3) for a, b in zip(lines.times, lines.times[1:])]
    print(f"FIGURES ids={first.id},{second.id} archive={manifest.archive_bytes} "
          f"up={manifest.upload.seconds:.6f} down={download.seconds:.6f} gaps={gaps}")
"""


def figures(result: pytest.RunResult) -> str:
    return next(m.group(1) for line in result.outlines if (m := re.search(r"FIGURES (.*)", line)))


@pytest.fixture
def recorded(pytester: pytest.Pytester, vast_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    pytester.makepyfile(test_rent=RENTING_MODULE)
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    monkeypatch.setenv("K", vast_emulator.api_key)
    monkeypatch.setenv("EMULATOR_URL", vast_emulator.url)
    result = pytester.runpytest(*recording_against(vast_emulator), "-s")
    result.assert_outcomes(passed=1)
    vast_emulator.stop()
    for name in ("VAST_API_KEY", "K"):
        monkeypatch.delenv(name)
    return result


def test_each_rental_has_its_own_cassette_beside_the_test(pytester, recorded):
    folder = pytester.path / "cassettes" / "test_rent"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test_two_rentals.rental-1.yaml",
        "test_two_rentals.rental-2.yaml",
        "test_two_rentals.ssh.yaml",
        "test_two_rentals.yaml",
    ]
    test = yaml.safe_load((folder / "test_two_rentals.ssh.yaml").read_text())
    assert test["rentals"] == ["test_rent/test_two_rentals.rental-1.yaml", "test_rent/test_two_rentals.rental-2.yaml"]
    # The stop and the status checks in the test body play on the test's own tape...
    calls = [(i["request"]["method"], i["request"]["uri"].split("/api/")[1]) for i in test["interactions"]]
    assert [method for method, _ in calls] == ["PUT", "GET", "GET"]
    # ...and vcrpy's cassette of the test body holds only the body's own request, not the provisioning client's.
    body = yaml.safe_load((folder / "test_two_rentals.yaml").read_text())
    assert [i["request"]["uri"].split("/api/")[1] for i in body["interactions"]] == ["v0/users/current/"]
    first = yaml.safe_load((folder / "test_two_rentals.rental-1.yaml").read_text())
    stream = next(op for op in first["ssh"] if op["op"] == "stream")
    assert stream["command"].startswith("tar -C / -cf - -- workspace/d")
    assert stream["out_size"] > 1_500_000 and "out_content" not in stream  # too large to keep: size and sha256 only


def test_rentals_replay_offline_with_the_recorded_ids_durations_and_output_times(pytester, recorded):
    replay = pytester.runpytest("-p", "no:xdist", "-s")
    replay.assert_outcomes(passed=1)
    assert figures(replay) == figures(recorded)
    replay.stdout.fnmatch_lines(["*dumont: 1 test(s) replayed from*"])


def test_a_test_that_rents_more_than_it_recorded_fails_naming_its_cassette(pytester, recorded):
    module = pytester.path / "test_rent.py"
    module.write_text(module.read_text().replace("    second = factory()\n", "    factory()\n    second = factory()\n"))
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteError: test_rent.py::test_two_rentals rents instance 3 but its cassette "
            "*test_two_rentals.ssh.yaml recorded 2: the test changed since it was recorded; record it again with*"
        ]
    )


def test_an_unrecorded_renting_test_is_skipped_with_the_command_that_records_it(pytester):
    pytester.makepyfile(test_rent=RENTING_MODULE)
    result = pytester.runpytest("-p", "no:xdist", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no cassette for test_rent.py::test_two_rentals*--dumont-mode=emulator*"])


def test_recording_again_with_fewer_rentals_removes_the_stale_cassettes(pytester, vast_emulator, monkeypatch):
    pytester.makepyfile(
        test_few="""
        import os, pytest

        @pytest.mark.parametrize("n", [int(os.environ["RENTALS"])], ids=["some"])
        def test_rent(dumont_instance_factory, n):
            for _ in range(n):
                dumont_instance_factory()
        """
    )
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    folder = pytester.path / "cassettes" / "test_few"
    for rentals, expected in ((2, ["rental-1", "rental-2"]), (1, ["rental-1"])):
        monkeypatch.setenv("RENTALS", str(rentals))
        pytester.runpytest(*recording_against(vast_emulator)).assert_outcomes(passed=1)
        names = sorted(p.name for p in folder.iterdir())
        assert names == [f"test_rent[some].{e}.yaml" for e in expected] + ["test_rent[some].ssh.yaml"]
