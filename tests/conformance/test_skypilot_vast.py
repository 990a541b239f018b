"""SkyPilot 0.14.1's Vast provisioner (``sky.provision.vast``), unmodified, through its whole lifecycle.

It runs in its own environment (``client_venvs``), one step per process (``drivers/skypilot_vast.py``), against one
emulator for the module: launch (its chunked offer search, create with its key in ``onstart``), cluster info, SSH in
with the key SkyPilot installs, stop, resume, terminate. SkyPilot polls every 10 s as shipped, so a launch takes
about that long.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from client_driver import Driver, driven
from ssh_probe import keypair, run_when_up

from pytest_dumont.emulator import Emulator

pytestmark = [pytest.mark.conformance, pytest.mark.clients]

CLUSTER = "dumont-sky"
REGION = "US"
INSTANCE_TYPE = "1x-RTX_4090-64-131072"  # SkyPilot's synthetic Vast type: {n}x-{gpu}-{cpus}-{ram MiB}


@pytest.fixture(scope="module")
def sky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Driver]]:
    with driven("skypilot", "skypilot_vast.py", tmp_path_factory.mktemp("sky")) as pair:
        yield pair


@pytest.fixture(scope="module")
def launched(sky: tuple[Emulator, Driver], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SkyPilot's launch, run once for the module; its answer (success or error) is what the tests read."""
    _, drive = sky
    key, _, public = keypair("skypilot")
    public_path = Path(tmp_path_factory.mktemp("sky-key")) / "sky-key.pub"
    public_path.write_text(public + "\n")
    return {"key": key, "public": public, "up": drive("up", CLUSTER, REGION, INSTANCE_TYPE, str(public_path))}


def _head(launched: dict[str, Any]) -> int:
    return int(Driver.result(launched["up"])["head_instance_id"])


def test_launch_rents_one_head_labelled_for_the_cluster_with_its_key_in_onstart(sky, launched):
    emulator, _ = sky
    head = _head(launched)
    assert emulator.world.live_ids() == [head]
    row = emulator.world.show(head)
    assert row is not None
    assert (row["label"], row["actual_status"], row["gpu_name"]) == (f"{CLUSTER}-head", "running", "RTX 4090")
    assert ["__SOURCE", "skypilot"] in row["extra_env"]
    assert launched["public"].split()[1] in (row.get("onstart") or "")


def test_cluster_info_names_a_reachable_ssh_endpoint(sky, launched):
    emulator, drive = sky
    head = str(_head(launched))
    info = Driver.result(drive("info", CLUSTER))
    assert info["head_instance_id"] == head
    (node,) = info["instances"][head]
    row = emulator.world.show(int(head))
    assert row is not None
    endpoints = {(row["ssh_host"], row["ssh_port"])}  # the proxy, always there
    direct = (row.get("ports") or {}).get("22/tcp")
    if direct:  # only for instances created with direct SSH
        endpoints.add((row["public_ipaddr"], int(direct[0]["HostPort"])))
    assert (node["external_ip"], node["ssh_port"]) in endpoints


def test_ssh_in_with_the_key_skypilot_installed(sky, launched):
    _, drive = sky
    head = str(_head(launched))
    (node,) = Driver.result(drive("info", CLUSTER))["instances"][head]
    key: paramiko.PKey = launched["key"]
    assert run_when_up(node["external_ip"], node["ssh_port"], key, "echo $CONTAINER_ID", 15.0).strip() == head


def test_stop_then_resume_then_terminate(sky, launched):
    emulator, drive = sky
    head = _head(launched)
    Driver.result(drive("stop", CLUSTER))
    assert Driver.result(drive("query", CLUSTER)) == {str(head): "ClusterStatus.STOPPED"}
    resumed = Driver.result(drive("start", CLUSTER, REGION, INSTANCE_TYPE, "/nonexistent.pub"))
    assert (resumed["head_instance_id"], resumed["created"]) == (str(head), [])
    assert Driver.result(drive("query", CLUSTER)) == {str(head): "ClusterStatus.UP"}
    Driver.result(drive("down", CLUSTER))
    assert Driver.result(drive("query", CLUSTER)) == {}
    assert emulator.world.live_ids() == []
