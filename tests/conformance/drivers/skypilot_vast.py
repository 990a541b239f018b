"""Drive SkyPilot's Vast provisioner (``sky.provision.vast``), unmodified, one lifecycle step per run.

Run by the SkyPilot environment's interpreter (``client_venvs``) as ``skypilot_vast.py --serve``, one step a line,
pointed at the emulator by ``VAST_URL`` and ``VAST_API_KEY`` (what the SDK it wraps reads). Steps:
``up|start CLUSTER REGION INSTANCE_TYPE PUBLIC_KEY_PATH`` and ``info|query|stop|down CLUSTER``.
"""

from __future__ import annotations

from typing import Any

from serve import serve


def _config(instance_type: str, public_key_path: str, resume: bool) -> Any:
    from sky.provision import common

    return common.ProvisionConfig(
        provider_config={},
        authentication_config={"ssh_user": "root", "ssh_public_key": public_key_path},
        docker_config={},
        node_config={"InstanceType": instance_type, "DiskSize": 20, "Preemptible": False, "ImageId": "ubuntu:22.04"},
        count=1,
        tags={},
        resume_stopped_nodes=resume,
        ports_to_open_on_launch=None,
    )


def _info(cluster: str) -> dict[str, Any]:
    from sky.provision import vast

    info = vast.get_cluster_info("US", cluster, {})
    return {
        "head_instance_id": info.head_instance_id,
        "instances": {
            iid: [{"external_ip": i.external_ip, "internal_ip": i.internal_ip, "ssh_port": i.ssh_port} for i in infos]
            for iid, infos in info.instances.items()
        },
    }


def _run(cluster: str, region: str, instance_type: str, public_key_path: str, resume: bool) -> dict[str, Any]:
    from sky.provision import vast

    record = vast.run_instances(region, cluster, cluster, _config(instance_type, public_key_path, resume))
    return {"head_instance_id": record.head_instance_id, "created": record.created_instance_ids}


def up(cluster: str, region: str, instance_type: str, public_key_path: str) -> dict[str, Any]:
    return _run(cluster, region, instance_type, public_key_path, resume=False)


def start(cluster: str, region: str, instance_type: str, public_key_path: str) -> dict[str, Any]:
    return _run(cluster, region, instance_type, public_key_path, resume=True)


def query(cluster: str) -> dict[str, str]:
    from sky.provision import vast

    return {k: str(v[0]) for k, v in vast.query_instances(cluster, cluster, {}).items()}


def stop(cluster: str) -> None:
    from sky.provision import vast

    vast.stop_instances(cluster, {})


def down(cluster: str) -> None:
    from sky.provision import vast

    vast.terminate_instances(cluster, {})


STEPS = {"up": up, "start": start, "info": _info, "query": query, "stop": stop, "down": down}


if __name__ == "__main__":
    serve(STEPS)
