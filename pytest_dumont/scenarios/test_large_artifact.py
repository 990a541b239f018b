"""Snapshot and restore of a large artifact (a model's weights, size-parametric): make N MB of data on one
instance, snapshot it, restore it on a new instance, verify its MD5; report the bandwidth and the time per GB.

Sizes come from ``DUMONT_ARTIFACT_MB`` (comma-separated, default 64): ``DUMONT_ARTIFACT_MB=1000,7000 dumont test
large_artifact --real`` moves a 7 GB "model", the size of a 7B-parameter model's weights in 8 bits.
"""

from __future__ import annotations

import os

import pytest

from pytest_dumont.provisioning.factory import InstanceFactory
from pytest_dumont.scenarios.conftest import Figures
from pytest_dumont.scenarios.snapshot import SnapshotStore, restore, snapshot, verify

DEFAULT_SIZES_MB = "64"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per size in ``DUMONT_ARTIFACT_MB``, read at collection (never at import)."""
    if "size_mb" in metafunc.fixturenames:
        text = os.environ.get("DUMONT_ARTIFACT_MB", DEFAULT_SIZES_MB)
        try:
            sizes = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise pytest.UsageError(f"DUMONT_ARTIFACT_MB={text!r}: give sizes in MB, e.g. 64 or 64,1000") from None
        metafunc.parametrize("size_mb", sizes, ids=[f"{s}MB" for s in sizes])


def test_large_artifact(
    dumont_instance_factory: InstanceFactory,
    dumont_snapshot_store: SnapshotStore,
    scenario_figures: Figures,
    size_mb: int,
) -> None:
    factory, store = dumont_instance_factory, dumont_snapshot_store
    first = factory()
    artifact = f"/workspace/artifact-{first.id}"
    with factory.phase(first, f"create {size_mb} MB"):
        first.connection.run(
            f"mkdir -p {artifact} && head -c {size_mb * 1_000_000} /dev/urandom > {artifact}/model.bin"
        )
    with factory.phase(first, "snapshot"):
        manifest = snapshot(first.connection, [artifact], store, key=f"artifact-{first.id}.tar")
    assert manifest.total_bytes == size_mb * 1_000_000
    factory.destroy(first)

    second = factory()
    with factory.phase(second, "restore"):
        download = restore(second.connection, manifest, store)
    with factory.phase(second, "verify"):
        verify(second.connection, manifest)
    factory.destroy(second)

    gigabytes = manifest.archive_bytes / 1e9
    scenario_figures("artifact", size_mb, "MB")
    scenario_figures("snapshot up (instance->store)", manifest.upload.mb_per_s, "MB/s")
    scenario_figures("restore down (store->instance)", download.mb_per_s, "MB/s")
    scenario_figures("snapshot time per GB", manifest.upload.seconds / gigabytes, "s/GB")
    scenario_figures("restore time per GB", download.seconds / gigabytes, "s/GB")
