"""The lifecycle reaches an instance on both of Vast's SSH paths: the direct port when the machine has open ports,
the proxy (``ssh_host:ssh_port``) when it has none. Real HTTP and real SSH against the emulator."""

from __future__ import annotations

import pytest

from pytest_dumont.clock import SystemClock
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.ssh.keys import SessionKey
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters

IMAGE = "nvidia/cuda:12.1.0-base-ubuntu22.04"
NO_OPEN_PORTS = {
    "id": 31000001,
    "gpu_name": "RTX 4090",
    "num_gpus": 1,
    "dph_base": 0.2,
    "storage_cost": 0.1,
    "disk_space": 500,
    "reliability": 0.99,
    "direct_port_count": 0,
}


@pytest.fixture
def session_key(tmp_path):
    key = SessionKey.generate(tmp_path / "key", "dumont-ssh-paths-test")
    yield key
    key.remove()


def provision_and_run(emulator, key, tmp_path) -> tuple[tuple[str, int] | None, dict, str]:
    provisioner = Provisioner(
        VastClient(emulator.url, emulator.api_key),
        clock=SystemClock(),
        ledger=Ledger(),
        session_id="sshpaths",
        ssh_key=key,
        known_hosts=tmp_path / "known_hosts",
        deadlines=Deadlines(boot=30, ssh=30, poll_max=0.2),
    )
    ready = provisioner.provision(ProvisionRequest(filters=OfferFilters(), image=IMAGE))
    try:
        row = emulator.world.show(ready.record.instance_id)
        out = ready.connection.run("echo $CONTAINER_ID", hide=True).stdout.strip()
        return ready.record.ssh_address, row, out
    finally:
        provisioner.destroy(ready.record, ready.connection)


def test_the_lifecycle_uses_the_direct_endpoint_when_the_machine_has_one(vast_emulator, session_key, tmp_path):
    address, row, out = provision_and_run(vast_emulator, session_key, tmp_path)
    direct = (row["public_ipaddr"], int(row["ports"]["22/tcp"][0]["HostPort"]))
    assert address == direct
    assert address != (row["ssh_host"], row["ssh_port"])
    assert out == str(row["id"])


def test_the_lifecycle_falls_back_to_the_proxy_without_open_ports(make_emulator, session_key, tmp_path):
    emulator = make_emulator(market=[NO_OPEN_PORTS])
    address, row, out = provision_and_run(emulator, session_key, tmp_path)
    assert row["ports"] == {}
    assert address == (row["ssh_host"], row["ssh_port"])
    assert out == str(row["id"])
