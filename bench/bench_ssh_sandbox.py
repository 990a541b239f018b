"""Per-command cost of each way to isolate an emulated instance's commands, bare and end to end over SSH.

Candidates: no isolation (``env -C workspace sh -c``), a fresh ``unshare -m`` plus three bind mounts per command,
and ``nsenter`` into the mount namespace a long-lived holder process keeps (what ``Sandbox`` does). Each is timed
spawning ``true`` directly, then as an SSH exec request (paramiko) to an ``InstanceSSH``, then as a fabric
``Connection.run("true")`` with default run options; both clients with TCP_NODELAY.

Usage: ``python bench/bench_ssh_sandbox.py [-n 300]``. Nothing is asserted: read the medians and the ratios to the
no-isolation baseline, measured in this one run.
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import paramiko
from fabric import Config, Connection

from pytest_dumont.emulator.loop import LoopThread
from pytest_dumont.emulator.sandbox import MOUNT_NAMESPACE, NO_ISOLATION, GpuFacts, Sandbox, isolation_works
from pytest_dumont.emulator.sshd import InstanceSSH

_PER_COMMAND = """cd "$1/bin"
mount --no-canonicalize --bind ../workspace /workspace
mount --no-canonicalize --bind ../root /root
mount --no-canonicalize --bind ../tmp /tmp
cd /workspace
shift
exec /bin/sh -c "$@"
"""


class PerCommandNamespace(Sandbox):
    """The alternative to the holder: every command gets a fresh mount namespace and its own three bind mounts."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, GpuFacts(), isolation=NO_ISOLATION)

    def command_argv(self, command: str | None) -> list[str]:
        unshare = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", _PER_COMMAND, "per-command"]
        return [*unshare, str(self.root), command or "exec /bin/sh -s"]


def median_ms(action: Callable[[], object], n: int, warmup: int = 50) -> float:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def spawn(box: Sandbox) -> Callable[[], object]:
    argv, env = box.command_argv("true"), box.environment()
    return lambda: subprocess.run(argv, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="timed commands per candidate")
    n = parser.parse_args().n
    if not isolation_works(MOUNT_NAMESPACE):
        raise SystemExit("needs root and unshare -m: the namespace candidates cannot run here")
    loop = LoopThread()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(client_key.export_private_key().decode()))
    with tempfile.TemporaryDirectory(prefix="dumont-bench-") as workdir:
        candidates = {
            "none (env -C, sh -c)": Sandbox(Path(workdir, "none"), GpuFacts(), isolation=NO_ISOLATION),
            "unshare + 3 mounts per command": PerCommandNamespace(Path(workdir, "unshare")),
            "nsenter into a holder (chosen)": Sandbox(Path(workdir, "holder"), GpuFacts(), isolation=MOUNT_NAMESPACE),
        }
        rows = []
        try:
            for name, box in candidates.items():
                server = InstanceSSH(loop, box, host_key)
                server.authorize(client_key.export_public_key().decode())
                server.open()
                try:
                    rows.append((name, *measure(box, server, pkey, n)))
                finally:
                    server.release()
        finally:
            for box in candidates.values():
                box.cleanup()
            loop.stop()
    base = rows[0]
    print(f"median of {n} sequential commands, ms (ratio to no isolation)")
    print(f"{'candidate':<34}{'spawn true':>18}{'SSH exec true':>18}{'fabric run(true)':>20}")
    for name, *values in rows:
        cells = [f"{value:6.2f} ({value / baseline:4.2f}x)" for value, baseline in zip(values, base[1:], strict=True)]
        print(f"{name:<34}{cells[0]:>18}{cells[1]:>18}{cells[2]:>20}")


def nodelay(server: InstanceSSH) -> socket.socket:
    """A connected client socket with Nagle off, as pytest-dumont's own client uses."""
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def measure(box: Sandbox, server: InstanceSSH, pkey: paramiko.PKey, n: int) -> tuple[float, float, float]:
    """Median ms of: spawning ``true`` in the sandbox, an SSH exec of it, and fabric's ``run("true")``."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - our own server on loopback
    client.connect(
        server.host, server.port, "root", pkey=pkey, sock=nodelay(server), look_for_keys=False, allow_agent=False
    )
    transport = client.get_transport()
    assert transport is not None

    def exec_true() -> None:
        channel = transport.open_session()
        channel.exec_command("true")
        channel.recv_exit_status()
        channel.close()

    config = Config(overrides={"load_ssh_configs": False})
    kwargs = {"pkey": pkey, "look_for_keys": False, "allow_agent": False, "sock": nodelay(server)}
    with Connection(server.host, user="root", port=server.port, config=config, connect_kwargs=kwargs) as conn:
        figures = (median_ms(spawn(box), n), median_ms(exec_true, n), median_ms(lambda: conn.run("true"), n))
    client.close()
    return figures


if __name__ == "__main__":
    main()
