"""The plugin's own provisioning overhead: from "running and SSH up" (the emulator's timestamp) to the hand-over.

Side by side in one run, on the same emulator: pytest-dumont's schedule (status polls from 50 ms growing 1.5x to a
cap, SSH retried every <= 250 ms) and the seed script's way (a fixed 10 s between polls, for status and SSH alike),
scaled by the same factor as the seed timeline (x0.05: 0.5 s), on the ``fast`` profile and the scaled ``seed`` one.
Usage: ``python bench/bench_provisioning.py [-n 10]``. Nothing is asserted: read the medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_dumont.clock import SystemClock
from pytest_dumont.emulator import Emulator
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.ssh.keys import SessionKey
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters

SEED_POLL_SECONDS = 10.0  # what the seed script slept between two status polls


def overheads(emulator: Emulator, deadlines: Deadlines, runs: int, workdir: Path) -> list[float]:
    """Seconds from the emulator's SSH-up mark to provision() returning, one per run."""
    key = SessionKey.generate(workdir / f"key-{time.monotonic_ns()}", "dumont-bench")
    provisioner = Provisioner(
        VastClient(emulator.url, emulator.api_key),
        clock=SystemClock(),
        ledger=Ledger(),
        session_id="bench",
        ssh_key=key,
        known_hosts=workdir / "known_hosts",
        deadlines=deadlines,
    )
    request = ProvisionRequest(filters=OfferFilters(), image="nvidia/cuda:12.1.0-base-ubuntu22.04")
    found: list[float] = []
    for _ in range(runs):
        ready = provisioner.provision(request)
        handed_over = time.time()
        row = next(r for r in emulator.world.history() if r["id"] == ready.id)
        found.append(handed_over - max(row["running_at"], row["ssh_up_at"]))
        provisioner.destroy(ready.record, ready.connection)
    key.remove()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    args = parser.parse_args()
    scale = 0.05
    fixed = SEED_POLL_SECONDS * scale
    cases = [("fast", 1.0), ("seed", scale)]
    print(f"{'profile':<14} {'poller':<38} {'median ms':>10} {'max ms':>9}  runs")
    with tempfile.TemporaryDirectory() as tmp:
        for profile, factor in cases:
            with Emulator(profile=profile, time_factor=factor) as emulator:
                ours = overheads(emulator, Deadlines(), args.runs, Path(tmp))
                seed_way = Deadlines(poll_first=fixed, poll_factor=1.0, poll_max=fixed, ssh_retry_max=fixed)
                seed_like = overheads(emulator, seed_way, args.runs, Path(tmp))
            name = f"{profile} x{factor:g}"
            for label, values in (
                ("pytest-dumont", ours),
                (f"fixed {fixed:g} s polls (seed's 10 s x{scale:g})", seed_like),
            ):
                print(
                    f"{name:<14} {label:<32} {statistics.median(values) * 1000:10.1f} "
                    f"{max(values) * 1000:9.1f}  {len(values)}"
                )
            print(
                f"{name:<14} {'ratio fixed / ours (median)':<32} "
                f"{statistics.median(seed_like) / statistics.median(ours):10.1f}"
            )


if __name__ == "__main__":
    main()
