"""``--dumont-remote`` against the emulator: the tree's sync, and tests through the gateway against one SSH command.

Two figures, measured side by side in one run:

1. Sync of a generated tree (default 50 MB in 2,000 files) to an emulated instance over loopback: the first sync,
   then a re-sync after one file changed (the target: under 0.5 s), then a re-sync with nothing changed.
2. 100 short tests on the instance: through pytest-xdist's SSH gateway (``pytest --dumont-remote``, one worker), and
   the same tests run there directly by pytest over one SSH command (``ssh ... python -m pytest``). Both are timed
   from the first SSH use after setup to the results in hand: the gateway's figure is the test session's wall time
   minus provisioning, sync and setup as the JSON report gives them. The target ratio is at most 1.3.

``--emulator-apart``: the gateway run uses the bench's emulator (its SSH servers in this process) instead of
starting one inside the controller's process, where it relays every worker message on the controller's CPU.

Usage: ``python bench/bench_remote_sync.py [--mb 50] [--files 2000] [--tests 100] [--emulator-apart]``. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_dumont.clock import SystemClock
from pytest_dumont.emulator import Emulator
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.remote import gateway, sync, tree
from pytest_dumont.ssh.keys import SessionKey
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters

VENDORED = ("pytest", "pluggy", "iniconfig", "packaging", "execnet", "pytest-xdist", "pygments")
SETUP = (
    "python3 -m venv --without-pip .dumont-venv && "
    'echo "$PWD/vendor" > "$(echo .dumont-venv/lib/python3*/site-packages)/vendor.pth" && '
    # pip compiles what it installs; so does this setup, or the first of the two runs would pay for it.
    "python3 -m compileall -q vendor"
)


def make_tree(root: Path, megabytes: float, files: int) -> None:
    size = int(megabytes * 1_000_000 / files)
    for index in range(files):
        path = root / f"pkg{index % 40}" / f"data_{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def vendor(dest: Path) -> None:
    """Copy the runner's pytest, xdist and their dependencies (pure Python) into the tree, for a setup offline."""
    for name in VENDORED:
        dist = metadata.distribution(name)
        for file in dist.files or ():
            source = Path(str(dist.locate_file(file)))
            if "__pycache__" in file.parts or file.parts[0] == ".." or not source.is_file():
                continue
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def bench_sync(emulator: Emulator, workdir: Path, megabytes: float, files: int) -> None:
    key = SessionKey.generate(workdir / "key", "dumont-bench")
    provisioner = Provisioner(
        VastClient(emulator.url, emulator.api_key),
        clock=SystemClock(),
        ledger=Ledger(),
        session_id="bench",
        ssh_key=key,
        known_hosts=workdir / "known_hosts",
        deadlines=Deadlines(boot=60, ssh=60, poll_max=0.2),
    )
    ready = provisioner.provision(ProvisionRequest(filters=OfferFilters(), image="bench"))
    try:
        root = workdir / "tree"
        make_tree(root, megabytes, files)

        def one_sync() -> tuple[float, float, sync.SyncResult]:
            started = time.perf_counter()
            manifest = tree.build_manifest(root, tree.list_tree(root), 10_000, tree.HashCache(workdir / "hashes.json"))
            hashed = time.perf_counter() - started
            result = sync.sync_tree(ready.connection, root, manifest, "dumont-remote/bench")
            return hashed, time.perf_counter() - started, result

        hashed, first, result = one_sync()
        print(
            f"first sync: {result.files_sent} files, {result.bytes_sent / 1e6:.1f} MB in {first:.3f} s "
            f"(hashing {hashed:.3f} s; {result.bytes_sent / 1e6 / first:.0f} MB/s)"
        )
        (root / "pkg3" / "data_3.bin").write_bytes(os.urandom(1000))
        hashed, again, result = one_sync()
        print(f"re-sync after one change: {result.files_sent} file in {again:.3f} s (hashing {hashed:.3f} s)")
        hashed, idle, result = one_sync()
        print(f"re-sync, nothing changed: {idle:.3f} s (hashing {hashed:.3f} s)")
        print(f"ratio re-sync / first sync: {again / first:.3f}")
    finally:
        provisioner.destroy(ready.record, ready.connection)
        key.remove()


# Loaded with -p on the controller and (from the vendored tree) on the workers, where it does nothing.
TIMING_PLUGIN = """
import json, subprocess, time
import pytest

STARTED = []
MARKS = {}
CPU = {}  # CPU seconds from the first report to the last: the controller's main thread, its process, a worker's

def _cpu(key):
    CPU.setdefault(key + " first", (time.thread_time(), time.process_time()))
    CPU[key + " last"] = (time.thread_time(), time.process_time())

def pytest_xdist_setupnodes(config, specs):
    STARTED.append(time.perf_counter())  # setup is done: the first gateway is about to be made

def pytest_testnodeready(node):
    MARKS.setdefault("worker ready", time.perf_counter() - STARTED[0])

def pytest_xdist_node_collection_finished(node, ids):
    MARKS.setdefault("collected", time.perf_counter() - STARTED[0])

def pytest_runtest_logreport(report):
    if hasattr(report, "node"):
        MARKS.setdefault("first report", time.perf_counter() - STARTED[0])
        MARKS["last report"] = time.perf_counter() - STARTED[0]
        _cpu("controller")
    else:  # on the worker, which sends its figures with its end
        _cpu("worker")

def pytest_testnodedown(node, error):
    CPU.update((getattr(node, "workeroutput", None) or {}).get("bench_cpu", {}))

@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    try:
        return (yield)
    finally:
        if STARTED:
            session.config._bench_gateway = time.perf_counter() - STARTED[0]

@pytest.hookimpl(wrapper=True, tryfirst=True)  # before pytest-dumont destroys the instance
def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workerinput"):
        config.workeroutput["bench_cpu"] = CPU
        return (yield)
    from pytest_dumont.remote.session import REMOTE_KEY
    run = config.stash[REMOTE_KEY]
    command = f"cd {run.remote_dir} && .dumont-venv/bin/python -m pytest -q -p no:cacheprovider"
    started = time.perf_counter()
    # A fresh connection, as a person's one SSH command makes (not the workers' master connection).
    ssh = ["ssh", "-F", str(run.directory / "ssh_config"), "-o", "ControlPath=none", "dumont-remote"]
    done = subprocess.run([*ssh, command],
                          capture_output=True, text=True)
    direct = time.perf_counter() - started
    out = config.rootpath.parent / "timing.json"
    figures = {"gateway": config._bench_gateway, "marks": MARKS, "direct": direct, "cpu": CPU}
    figures["tail"] = done.stdout[-200:]
    out.write_text(json.dumps(figures))
    return (yield)
"""


def bench_tests(emulator: Emulator, workdir: Path, count: int, apart: bool = False) -> None:
    project = workdir / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    body = "".join(f"def test_{i}():\n    assert {i} + 1 > {i}\n\n" for i in range(count))
    (project / "tests" / "test_short.py").write_text(body)
    vendor(project / "vendor")
    for where in (project / "vendor", workdir / "plugin"):  # the workers' copy, the controller's
        where.mkdir(exist_ok=True)
        (where / "bench_timing.py").write_text(TIMING_PLUGIN)
    command = [
        sys.executable,
        *("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_timing"),
        *("--dumont-mode=emulator", "--dumont-remote", "--dumont-remote-setup", SETUP),
    ]
    env = {**os.environ, "PYTHONPATH": str(workdir / "plugin")}
    if apart:  # this process's emulator: its SSH servers are not in the controller's process, as on Vast
        command.append(f"--dumont-api-url={emulator.url}")
        state = workdir / "state"
        env.update(VAST_API_KEY=emulator.api_key, XDG_STATE_HOME=str(state), DUMONT_LEDGER=str(state / "ledger.json"))
    where = "in a process of its own" if apart else "in the controller's process"
    print(f"the emulator runs {where}")
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:])
        raise SystemExit("the gateway run failed")
    timing = json.loads((workdir / "timing.json").read_text())
    gateway_s, direct_s = timing["gateway"], timing["direct"]
    print(f"{count} tests through the gateway (one worker: gateway, start, collect, run, stop): {gateway_s:.2f} s")
    print(f"the same run directly by pytest over one SSH command: {direct_s:.2f} s ({timing['tail'].strip()})")
    print(f"ratio gateway / direct: {gateway_s / direct_s:.2f}")
    print("gateway milestones (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timing["marks"].items()))
    cpu = timing["cpu"]

    def per_test(side: str, which: int) -> float:
        return (cpu[f"{side} last"][which] - cpu[f"{side} first"][which]) / count * 1000

    print(
        f"CPU per test, first report to last: controller main thread {per_test('controller', 0):.2f} ms (every "
        f"report hook), controller process {per_test('controller', 1):.2f} ms (with execnet's receiver"
        f"{'' if apart else ' and the emulator' + chr(39) + 's SSH server'}), worker {per_test('worker', 1):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument(
        "--emulator-apart",
        action="store_true",
        help="the gateway run uses this process's emulator, not one in the controller's process (closer to Vast)",
    )
    args = parser.parse_args()
    gateway.require_ssh_client()
    with Emulator() as emulator, tempfile.TemporaryDirectory(prefix="dumont-bench-remote-") as tmp:
        bench_sync(emulator, Path(tmp), args.mb, args.files)
        bench_tests(emulator, Path(tmp), args.tests, args.emulator_apart)


if __name__ == "__main__":
    main()
