"""Failover: instance 1 writes files, they are snapshotted with an MD5
manifest, instance 1 is stopped (paused), instance 2 is rented, the snapshot is restored there and every MD5 checked,
and both are destroyed.

The snapshot goes through the runner into a local directory, or into the S3-compatible store the ``DUMONT_S3_*``
variables name (docs/scenarios.md). The figures: the failover time split into its phases, and the snapshot bandwidth
each way.
"""

from __future__ import annotations

from pytest_dumont.provisioning.factory import InstanceFactory
from pytest_dumont.scenarios.conftest import Figures
from pytest_dumont.scenarios.snapshot import SnapshotStore, load_manifest, restore, snapshot, verify

DATA_MB = 2  # random bytes beside the seed's text file; the large-artifact scenario measures big ones


def test_failover(
    dumont_instance_factory: InstanceFactory, dumont_snapshot_store: SnapshotStore, scenario_figures: Figures
) -> None:
    factory, store = dumont_instance_factory, dumont_snapshot_store
    client = factory.pool.provisioner.client
    first = factory()
    data = f"/workspace/failover-{first.id}"
    with factory.phase(first, "write files"):
        first.connection.run(
            f"mkdir -p {data}/nested && printf 'Dumont Cloud Failover Test\\nTimestamp: {first.id}\\n' > {data}/a.txt"
            f" && head -c {DATA_MB * 1_000_000} /dev/urandom > {data}/nested/b.bin && : > {data}/empty",
            hide=True,
        )
    with factory.phase(first, "snapshot"):
        manifest = snapshot(first.connection, [data], store, key=f"failover-{first.id}.tar")
    assert {f.path.rsplit("/", 1)[-1] for f in manifest.files} == {"a.txt", "b.bin", "empty"}
    assert load_manifest(store, manifest.key) == manifest

    failover_started = factory.clock.now()
    with factory.phase(first, "stop instance 1"):
        factory.stop(first)
    stopped = client.show_instance(first.id)
    assert stopped is not None and "stopped" in (stopped.intended_status, stopped.cur_state)

    second = factory()
    assert second.id != first.id
    with factory.phase(second, "restore"):
        download = restore(second.connection, manifest, store)
    with factory.phase(second, "verify"):
        verify(second.connection, manifest)
    failover_seconds = factory.clock.now() - failover_started

    factory.destroy(second)
    factory.destroy(first)
    assert client.show_instance(first.id) is None and client.show_instance(second.id) is None

    record = second.record
    scenario_figures("failover total", failover_seconds, "s")
    scenario_figures("  stop instance 1", first.record.phase_seconds("stop instance 1"), "s")
    scenario_figures("  provision instance 2", record.provisioning_seconds(), "s")
    scenario_figures("  restore", record.phase_seconds("restore"), "s")
    scenario_figures("  verify", record.phase_seconds("verify"), "s")
    scenario_figures("snapshot size", manifest.archive_bytes / 1e6, "MB")
    scenario_figures("snapshot up (instance->store)", manifest.upload.mb_per_s, "MB/s")
    scenario_figures("restore down (store->instance)", download.mb_per_s, "MB/s")
