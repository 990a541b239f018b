"""The emulator under a CI fleet: 50 instances with SSH up at once, and the API's latency at 50 requests/s.

A standalone emulator (``python -m pytest_dumont.emulator``, its own process) rents N instances (fast profile),
waits until every one has its SSH server up (and checks each port answers), then this second process drives a
fixed rate of mixed ``GET`` show-instance / list-instances calls for a bounded time, paced by a schedule (not by
answers, so a slow answer cannot lower the rate), on keep-alive connections from a few threads.
Usage: ``python bench/bench_emulator_load.py [--instances 50] [--rate 50] [--seconds 20]``. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

import requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory()
    market = Path(workdir.name) / "market.json"
    market.write_text(json.dumps(fleet_market(args.instances)))
    cmd = [sys.executable, "-m", "pytest_dumont.emulator", "--port", "0", "--quiet", "--market", str(market)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        key = proc.stdout.readline().split()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        setup = requests.Session()
        offers = setup.post(f"{url}/api/v0/bundles/", json={"limit": 200}, headers=headers, timeout=30).json()
        ids: list[int] = []
        started = time.perf_counter()
        for offer in offers["offers"][: args.instances]:
            body = {"image": "nvidia/cuda:12.1.0-base-ubuntu22.04", "disk": 10, "runtype": "ssh"}
            answer = setup.put(f"{url}/api/v0/asks/{offer['id']}/", json=body, headers=headers, timeout=30).json()
            ids.append(int(answer["new_contract"]))
        deadline = time.monotonic() + 120
        while True:  # poll (bounded) until every instance reports SSH up
            rows = setup.get(f"{url}/_emulator/instances/", timeout=30).json()["instances"]
            up = [r for r in rows if r["id"] in ids and r["ssh_up"]]
            if len(up) == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for row in up:
            with socket.create_connection(("127.0.0.1", row["ssh_port"]), timeout=5) as sock:
                assert sock.recv(4).startswith(b"SSH-")
        print(
            f"{len(up)}/{len(ids)} instances with SSH up (banner read on each) in {time.perf_counter() - started:.1f} s"
        )
        latencies = drive(url, headers, ids, args.rate, args.seconds)
        print(
            f"{len(latencies)} requests in {args.seconds:g} s at {args.rate:g}/s (mixed show/list), "
            "from a second process"
        )
        q = statistics.quantiles(latencies, n=100)
        print(f"latency ms: p50 {q[49]:.1f}  p90 {q[89]:.1f}  p99 {q[98]:.1f}  max {max(latencies):.1f}")
        for instance_id in ids:
            setup.delete(f"{url}/api/v0/instances/{instance_id}/", headers=headers, timeout=30)
    finally:
        proc.terminate()
        proc.wait(60)
        workdir.cleanup()


def fleet_market(count: int) -> dict[str, object]:
    """The bundled market's offers, repeated with fresh ids until there are ``count`` (one instance per offer)."""
    bundled = json.loads((files("pytest_dumont.emulator") / "data" / "market.json").read_text())["offers"]
    offers = [dict(bundled[i % len(bundled)], id=900_000 + i) for i in range(count)]
    return {"comment": "bench fleet", "offers": offers}


def drive(url: str, headers: dict[str, str], ids: list[int], rate: float, seconds: float) -> list[float]:
    """Send ``rate`` requests per second for ``seconds`` on a fixed schedule; return each latency in ms."""
    local = threading.local()
    latencies: list[float] = []
    lock = threading.Lock()
    rng = random.Random(6)

    def one(path: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        t = time.perf_counter()
        session.get(url + path, headers=headers, timeout=10).raise_for_status()
        with lock:
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in range(int(rate * seconds)):
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            path = f"/api/v0/instances/{rng.choice(ids)}/" if i % 5 else "/api/v1/instances/"
            pool.submit(one, path)
    return latencies


if __name__ == "__main__":
    main()
