"""The seed's journey as a pytest module: rent one RTX 4090, write a file over SSH, read it back, check the GPU and
the disk, and let the plugin destroy the instance and report time and cost.

Run it against the bundled emulator (no key, no money):

    pytest examples/seed_journey --dumont-mode=emulator

replay it from the repository's cassettes (no network, no waiting; what ``pytest`` alone does):

    pytest examples/seed_journey

record those cassettes again with the emulator's seed timeline:

    pytest examples/seed_journey --dumont-mode=emulator --dumont-emulator-profile=seed --dumont-record-mode=rewrite

or on a real Vast.ai machine (about half a US cent):

    VAST_API_KEY=... pytest examples/seed_journey -m real_gpu

Copy it into your own suite: ``vast_gpu`` and ``ssh_session`` come from the plugin.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dumont_offer(gpu="RTX 4090", max_dph=0.50, min_disk=20, min_reliability=0.90)


@pytest.fixture
def stamp(vast_gpu) -> int:
    """One stamp per rented machine, so the file the first test writes is the one the second reads.

    The instance id rather than the wall clock: the same in every test that shares the instance, and the same when
    the journey replays from its cassettes.
    """
    return vast_gpu.id


def test_instance_is_running_on_the_requested_gpu(vast_gpu):
    assert vast_gpu.gpu_name == "RTX 4090"
    assert vast_gpu.dph_total <= 0.50
    assert vast_gpu.offer.disk_space >= 20
    assert vast_gpu.offer.reliability >= 0.90
    # The seed's timeline: the API said null (shown as "unknown") or loading before it said running.
    assert vast_gpu.timeline[-1].status == "running"


def test_create_file(ssh_session, dumont_phase, stamp):
    with dumont_phase("create file"):
        ssh_session.run("mkdir -p /workspace", hide=True)
        content = f"Dumont Cloud Failover Test\nTimestamp: {stamp}\n"
        ssh_session.run(f"printf '%s' '{content}' > /workspace/failover-test-{stamp}.txt", hide=True)


def test_verify_file(ssh_session, dumont_phase, stamp):
    with dumont_phase("verify file"):
        path = f"/workspace/failover-test-{stamp}.txt"
        result = ssh_session.run(f"test -f {path} && cat {path}", hide=True, warn=True)
    assert result.ok, f"{path} is missing: {result.stderr}"
    assert result.stdout.splitlines() == ["Dumont Cloud Failover Test", f"Timestamp: {stamp}"]


def test_gpu_facts(ssh_session, dumont_phase):
    with dumont_phase("nvidia-smi and df"):
        gpu = ssh_session.run(
            "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader", hide=True
        ).stdout.strip()
        disk = ssh_session.run("df -h /workspace | tail -n 1", hide=True).stdout.split()
    name, driver, memory = (part.strip() for part in gpu.split(","))
    assert name == "NVIDIA GeForce RTX 4090"
    assert driver.split(".")[0].isdigit()
    assert memory == "24564 MiB"
    assert len(disk) >= 6 and disk[-2].endswith("%")
