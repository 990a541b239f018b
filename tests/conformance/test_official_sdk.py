"""The official SDK (``vastai`` 1.9.1's ``VastAI`` class) against the emulator, unmodified, over real HTTP and SSH.

It is pointed at the emulator by its own ``server_url`` argument; its keys are added the ways it offers (an account
key with ``create_ssh_key``, a key on a running instance with ``attach_ssh``), and the test SSHes in with them.
"""

from __future__ import annotations

import os
import warnings
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from ssh_probe import keypair, run_when_up, wait_for

pytestmark = pytest.mark.conformance

try:
    import vastai
except ImportError:
    if os.environ.get("CI"):
        raise  # CI installs the 'conformance' extra: a missing SDK is a broken install, not a skip
    pytest.skip("the official SDK is not installed (pip install 'pytest-dumont[conformance]')", allow_module_level=True)

IMAGE = "nvidia/cuda:12.1.0-base-ubuntu22.04"


@pytest.fixture
def emulator(make_emulator: Any) -> Any:
    return make_emulator(profile="fast")


@pytest.fixture
def sdk(emulator: Any) -> Any:
    return vastai.VastAI(api_key=emulator.api_key, server_url=emulator.url, retry=3)


def status(sdk: Any, instance_id: int) -> Any:
    row = sdk.show_instance(instance_id)
    return row.get("actual_status") if row else None


def ssh_endpoint(sdk: Any, instance_id: int) -> tuple[str, int]:
    url = urlsplit(sdk.ssh_url(instance_id))
    assert url.scheme == "ssh" and url.username == "root"
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


def test_search_create_ssh_stop_start_destroy(sdk, emulator):
    account_key, _, account_public = keypair("sdk-account")
    added = sdk.create_ssh_key(ssh_key=account_public)
    assert added["success"] is True

    offers = sdk.search_offers("gpu_name=RTX_4090 num_gpus=1 reliability>0.98", order="dph_total", limit=3)
    assert [o["gpu_name"] for o in offers] == ["RTX 4090"] * 3
    assert [o["dph_total"] for o in offers] == sorted(o["dph_total"] for o in offers)

    created = sdk.create_instance(
        offers[0]["id"], image=IMAGE, disk=20, ssh=True, direct=True, label="sdk-run", onstart_cmd="echo sdk-onstart"
    )
    assert created["success"] is True
    instance_id = created["new_contract"]
    assert emulator.world.live_ids() == [instance_id]
    wait_for(lambda: status(sdk, instance_id) == "running", "running")

    host, port = ssh_endpoint(sdk, instance_id)
    assert run_when_up(host, port, account_key, "echo $CONTAINER_ID").strip() == str(instance_id)

    attached_key, _, attached_public = keypair("sdk-attached")
    assert sdk.attach_ssh(instance_id, attached_public)["success"] is True
    assert run_when_up(host, port, attached_key, "echo attached").strip() == "attached"

    assert sdk.stop_instance(instance_id)["success"] is True
    assert status(sdk, instance_id) in ("exited", "stopped")
    assert sdk.start_instance(instance_id)["success"] is True
    wait_for(lambda: status(sdk, instance_id) == "running", "running after start")
    host, port = ssh_endpoint(sdk, instance_id)
    assert run_when_up(host, port, account_key, "echo back").strip() == "back"

    assert sdk.destroy_instance(instance_id)["success"] is True
    assert emulator.world.live_ids() == []
    assert not sdk.show_instance(instance_id)


def test_logs_execute_snapshot_and_charges_through_the_sdk(sdk, emulator):
    offer = sdk.search_offers("gpu_name=RTX_4090 num_gpus=1", order="dph_total", limit=1)[0]
    onstart = "echo sdk-onstart-line; mkdir -p /workspace/out; echo result > /workspace/out/r.txt"
    instance_id = sdk.create_instance(offer["id"], image=IMAGE, disk=20, ssh=True, onstart_cmd=onstart)["new_contract"]
    wait_for(lambda: "sdk-onstart-line" in sdk.logs(instance_id), "the onstart's output in the logs")

    assert sdk.logs(instance_id, tail="1") == "sdk-onstart-line\n"
    assert "running actual_status=running" in sdk.logs(instance_id, daemon_logs=True)
    assert sdk.execute(instance_id, "ls out") == "r.txt\n"

    snapshot = sdk.take_snapshot(instance_id, repo="me/sdk-snap", docker_login_user="me", docker_login_pass="pw-x")
    assert snapshot["success"] is True
    recorded = requests.get(f"{emulator.url}/_emulator/snapshots/", timeout=30).json()["snapshots"]
    assert [(s["instance_id"], s["personal_repo"]) for s in recorded] == [(instance_id, "me/sdk-snap")]

    charges = sdk.show_invoices_v1(charges=True, limit=10)
    assert [r["source"] for r in charges["results"]] == [f"instance-{instance_id}"]
    invoices = sdk.show_invoices_v1(invoices=True)
    assert [r["type"] for r in invoices["results"]] == ["credit"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = sdk.show_invoices()
    assert {r["type"] for r in legacy["invoices"]} == {"payment", "charge"}


def test_chunked_search_as_skypilot_asks_for_it(sdk):
    offers = sdk.search_offers("chunked=true num_gpus=1 gpu_name=RTX_4090 disk_space>=100")
    assert offers
    assert all(o["gpu_ram"] & 0xF == 0 and o["cpu_ram"] == 64 * 1024 for o in offers)
