"""Lifecycle: the whole rental journey, with a checklist of what must hold at each step as asserts.

Rent the cheapest RTX 4090 under $0.50/h, write a file over SSH, read it back, check the GPU and the disk, destroy the
instance and confirm it is gone. ``dumont test lifecycle`` runs it against the emulator; ``--real`` on Vast.ai
(about half a US cent).
"""

from __future__ import annotations

import pytest

from pytest_dumont.provisioning.factory import InstanceFactory
from pytest_dumont.scenarios.conftest import Figures

pytestmark = pytest.mark.dumont_offer(gpu="RTX 4090", max_dph=0.50, min_disk=20, min_reliability=0.90)


def test_seed_journey(dumont_instance_factory: InstanceFactory, scenario_figures: Figures) -> None:
    factory = dumont_instance_factory
    gpu = factory()
    conn = gpu.connection

    # Conectividade: offers found, the instance created, status polled to running, SSH up.
    provisioned = [p.name for p in gpu.phases if p.kind == "provision"]
    assert provisioned[:4] == ["search", "create", "wait_running", "wait_ssh"]
    assert all(p.outcome == "passed" for p in gpu.phases if p.kind == "provision")
    assert gpu.timeline[-1].status == "running"
    assert gpu.dph_total <= 0.50 and gpu.offer.reliability >= 0.90 and gpu.offer.disk_space >= 20

    # Operações SSH: commands, a directory, a file written, read back and checked.
    path = f"/workspace/failover-test-{gpu.id}.txt"
    content = f"Dumont Cloud Failover Test\nTimestamp: {gpu.id}\n"
    with factory.phase(gpu, "create file"):
        assert conn.run("mkdir -p /workspace", hide=True).ok
        conn.run(f"printf '%s' '{content}' > {path}", hide=True)
    with factory.phase(gpu, "verify file"):
        read = conn.run(f"test -f {path} && cat {path}", hide=True, warn=True)
    assert read.ok, f"{path} is missing: {read.stderr}"
    assert read.stdout == content

    # Hardware: the GPU seen by nvidia-smi, its driver and VRAM; a working disk.
    with factory.phase(gpu, "nvidia-smi and df"):
        smi = conn.run("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader", hide=True)
        disk = conn.run("df -h /workspace | tail -n 1", hide=True).stdout.split()
    name, driver, memory = (part.strip() for part in smi.stdout.strip().split(","))
    assert name.endswith("RTX 4090")
    assert driver.split(".")[0].isdigit()
    assert int(memory.split()[0]) >= 24000
    assert len(disk) >= 6 and disk[-2].endswith("%")

    # Lifecycle: destroyed, and the API confirms it is gone.
    factory.destroy(gpu)
    assert gpu.record.destroyed_at is not None
    assert factory.pool.provisioner.client.show_instance(gpu.id) is None

    scenario_figures(
        "boot to SSH", gpu.record.phase_seconds("wait_running") + gpu.record.phase_seconds("wait_ssh"), "s"
    )
    scenario_figures("cost", gpu.record.billed_cost(factory.clock.now()), "USD (billed estimate)")
