"""dstack 0.22.5's Vast backend and gpuhunt 0.1.34's ``VastAIProvider``, unmodified, through their lifecycle.

They run in their own environment (``client_venvs``), one step per process (``drivers/dstack_vast.py``), against one
emulator for the module: offers through dstack's catalog (gpuhunt, which searches without a key), create as dstack's
``run_job`` does (``runtype: args``, the runner's port ``-p 10022:10022`` in ``env``), the provisioning update that
reads the runner's SSH endpoint, terminate (twice: ``no_such_instance`` counts as done). dstack has no stop/start for
Vast. SSH with dstack's keys goes to its runner, a binary the instance downloads from the internet: not run here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from client_driver import Driver, driven
from ssh_probe import keypair, wait_for

from pytest_dumont.emulator import Emulator

pytestmark = [pytest.mark.conformance, pytest.mark.clients]

SEED_OFFER = 29292839
RUNNER_PORT = "10022/tcp"


@pytest.fixture(scope="module")
def dstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Driver]]:
    with driven("dstack", "dstack_vast.py", tmp_path_factory.mktemp("dstack")) as pair:
        yield pair


@pytest.fixture(scope="module")
def created(dstack: tuple[Emulator, Driver]) -> dict[str, Any]:
    """dstack's create on the seed offer (independent of the catalog, which may fail), run once for the module."""
    emulator, drive = dstack
    _, _, public = keypair("dstack-project")
    answer = drive("create", str(SEED_OFFER), "dumont-dstack-run-0", public)
    instance_id = int(Driver.result(answer))
    wait_for(lambda: (emulator.world.show(instance_id) or {}).get("actual_status") == "running", "running")
    return {"instance_id": instance_id, "public": public}


def test_offers_through_dstacks_catalog(dstack):
    emulator, drive = dstack
    offers = Driver.result(drive("offers", "RTX4090"))
    market = {str(o["id"]): o for o in emulator.world.offers()}
    assert offers
    assert all(market[o["bundle_id"]]["gpu_name"] == "RTX 4090" for o in offers)


def test_create_as_run_job_does(dstack, created):
    emulator, _ = dstack
    row = emulator.world.show(created["instance_id"])
    assert row is not None
    assert (row["label"], row["image_runtype"], row["actual_status"]) == ("dumont-dstack-run-0", "args", "running")
    assert row["onstart"] == "/bin/sh"


def test_the_provisioning_update_finds_the_runners_endpoint(dstack, created):
    emulator, drive = dstack
    found = Driver.result(drive("provisioning", str(created["instance_id"])))
    row = emulator.world.show(created["instance_id"])
    assert row is not None
    assert found == {"hostname": row["public_ipaddr"], "ssh_port": int(row["ports"][RUNNER_PORT][0]["HostPort"])}


def test_terminate_is_idempotent(dstack, created):
    emulator, drive = dstack
    instance_id = str(created["instance_id"])
    assert Driver.result(drive("terminate", instance_id)) is None
    assert emulator.world.live_ids() == []
    assert Driver.result(drive("terminate", instance_id)) is None, "no_such_instance counts as terminated"
