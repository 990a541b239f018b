"""Auto-hibernation: an idle watcher samples GPU utilisation with
``nvidia-smi``; once it stays under 5% for 3 minutes, the instance is snapshotted and destroyed.

Against the emulator the utilisation is driven through its control API (80%, then 0% after a few busy samples) and
time is scaled: a 0.3 s window sampled every 50 ms. Live, a fresh instance is idle by itself and the whole
3 minutes apply.
"""

from __future__ import annotations

import requests

from pytest_dumont.provisioning.factory import InstanceFactory
from pytest_dumont.scenarios.conftest import Figures
from pytest_dumont.scenarios.idle import IdleWatcher, hibernate
from pytest_dumont.scenarios.snapshot import SnapshotStore, load_manifest
from pytest_dumont.session.resources import ApiEndpoint

THRESHOLD = 5.0
LIVE = {"window_s": 180.0, "sample_every_s": 10.0, "timeout_s": 900.0}
EMULATED = {"window_s": 0.3, "sample_every_s": 0.05, "timeout_s": 30.0}
BUSY_SAMPLES = 3


def set_emulated_utilization(api: ApiEndpoint, instance_id: int, percent: float) -> None:
    """The emulator's control for the utilisation its fake ``nvidia-smi`` reports."""
    url = f"{api.url}/_emulator/instances/{instance_id}/gpu_utilization/"
    requests.post(url, json={"percent": percent}, timeout=10).raise_for_status()


def test_auto_hibernation(
    dumont_instance_factory: InstanceFactory,
    dumont_api: ApiEndpoint,
    dumont_snapshot_store: SnapshotStore,
    scenario_figures: Figures,
) -> None:
    factory, store = dumont_instance_factory, dumont_snapshot_store
    gpu = factory()
    work = f"/workspace/hibernate-{gpu.id}"
    gpu.connection.run(f"mkdir -p {work} && echo 'state worth keeping' > {work}/state.txt", hide=True)
    pace = EMULATED if gpu.emulated else LIVE
    watcher = IdleWatcher(gpu.connection, THRESHOLD, pace["window_s"], pace["sample_every_s"], factory.clock)

    def go_idle_after_busy(_at: float, reading: float) -> None:
        busy = [r for _, r in watcher.samples if r >= THRESHOLD]
        if reading >= THRESHOLD and len(busy) == BUSY_SAMPLES:
            set_emulated_utilization(dumont_api, gpu.id, 0)

    if gpu.emulated:
        set_emulated_utilization(dumont_api, gpu.id, 80)
    with factory.phase(gpu, "watch until idle"):
        verdict = watcher.wait_until_idle(pace["timeout_s"], go_idle_after_busy if gpu.emulated else None)

    readings = [r for _, r in verdict.samples]
    assert verdict.idle_seconds >= pace["window_s"]
    assert all(r < THRESHOLD for at, r in verdict.samples if at >= verdict.idle_since)
    if gpu.emulated:  # busy first: the watcher did not call a busy GPU idle
        assert readings[:BUSY_SAMPLES] == [80.0] * BUSY_SAMPLES
        assert verdict.idle_since > verdict.samples[BUSY_SAMPLES - 1][0]

    with factory.phase(gpu, "hibernate (snapshot, destroy)"):
        manifest = hibernate(gpu.connection, [work], store, lambda: factory.destroy(gpu), key=f"hibernate-{gpu.id}.tar")
    # Verificar snapshot criado; verificar GPU destruída.
    assert load_manifest(store, manifest.key) == manifest
    assert [f.path.rsplit("/", 1)[-1] for f in manifest.files] == ["state.txt"]
    assert gpu.record.destroyed_at is not None
    assert factory.pool.provisioner.client.show_instance(gpu.id) is None

    scenario_figures("idle window", pace["window_s"], "s")
    scenario_figures("samples taken", len(readings), "")
    scenario_figures("idle detected after", verdict.idle_seconds, "s of idle")
    scenario_figures("hibernate (snapshot+destroy)", gpu.record.phase_seconds("hibernate (snapshot, destroy)"), "s")
