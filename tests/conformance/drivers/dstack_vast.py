"""Drive dstack's Vast backend (``dstack._internal.core.backends.vastai``) and its catalog (gpuhunt), step by step.

Run by the dstack environment's interpreter (``client_venvs``) as ``dstack_vast.py --serve``, one step a line.
Neither has a base-URL setting: the API client is an ``httpx.Client`` whose ``base_url`` is set to the emulator's,
and gpuhunt's module-level ``bundles_url`` is pointed at the emulator's search. Their code is otherwise run as
shipped. Steps: ``offers GPU_NAME``, ``create BUNDLE_ID LABEL PUBLIC_KEY``, ``provisioning INSTANCE_ID``,
``terminate INSTANCE_ID``.
"""

from __future__ import annotations

import os
from typing import Any

from serve import serve

URL = os.environ["VAST_URL"]
KEY = os.environ["VAST_API_KEY"]
IMAGE = "dstackai/base:py3.12-0.7-cuda-12.1"


def _compute() -> Any:
    import gpuhunt.providers.vastai as provider
    from dstack._internal.core.backends.vastai.compute import VastAICompute
    from dstack._internal.core.backends.vastai.models import VastAIAPIKeyCreds, VastAIConfig

    provider.bundles_url = f"{URL}/api/v0/bundles/"
    compute = VastAICompute(VastAIConfig(creds=VastAIAPIKeyCreds(api_key=KEY)))
    compute.api_client.s.base_url = f"{URL}/api/"
    return compute


def offers(gpu_name: str) -> Any:
    from dstack._internal.core.models.resources import ResourcesSpec
    from dstack._internal.core.models.runs import Requirements

    requirements = Requirements(resources=ResourcesSpec(gpu=gpu_name))
    found = _compute().get_offers_by_requirements(requirements, full_offers=True, unallocated_resources=False)
    return [
        {"bundle_id": o.instance.name, "price": o.price, "region": o.region, "gpus": len(o.instance.resources.gpus)}
        for o in found
    ]


def create(bundle_id: str, label: str, public_key: str) -> Any:
    from dstack._internal.core.backends.base.authorized_keys import build_authorized_keys

    # run_job builds the runner's start commands (they download the runner binary from the internet, which this
    # machine cannot reach) and hands them to create_instance; a stand-in that lists the keys it was given replaces
    # them, the create request itself is dstack's own.
    keys = build_authorized_keys(public_key, [])
    onstart = " && ".join(["echo dstack-runner-stand-in", *[f"echo {k.split()[0]}" for k in keys]])
    return _compute().api_client.create_instance(
        instance_name=label, bundle_id=bundle_id, image_name=IMAGE, onstart=onstart, disk_size=20
    )


def provisioning(instance_id: str) -> Any:
    from dstack._internal.core.models.backends.base import BackendType
    from dstack._internal.core.models.instances import InstanceType, Resources
    from dstack._internal.core.models.runs import JobProvisioningData

    data = JobProvisioningData(
        backend=BackendType.VASTAI,
        instance_type=InstanceType(name="0", resources=Resources(cpus=1, memory_mib=1024, gpus=[], spot=False)),
        instance_id=instance_id,
        hostname=None,
        internal_ip=None,
        region="US",
        price=0.0,
        username="root",
        ssh_port=None,
        dockerized=False,
        ssh_proxy=None,
        backend_data=None,
    )
    _compute().update_provisioning_data(data, "", "")
    return {"hostname": data.hostname, "ssh_port": data.ssh_port}


def terminate(instance_id: str) -> Any:
    _compute().terminate_instance(instance_id, "US")
    return None


STEPS = {"offers": offers, "create": create, "provisioning": provisioning, "terminate": terminate}

if __name__ == "__main__":
    serve(STEPS)
