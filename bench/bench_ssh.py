"""Sequential ``run("true")`` latency over loopback SSH: pytest-dumont's ``connect()`` against plain fabric.

Runs one emulated instance SSH server (the emulator's InstanceSSH, asyncssh) and times N sequential commands on
each client variant: the settings ``connect()`` applies, one at a time, so the table shows which of them matter.
Usage: ``python bench/bench_ssh.py [-n 300] [--warmup 20]``. Nothing is asserted: read the ratios.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fabric
import paramiko

from pytest_dumont.ssh import connect as ssh
from pytest_dumont.ssh.keys import SessionKey


class FastPollRemote(fabric.runners.Remote):  # type: ignore[misc]
    """The other fix one might try: keep invoke's polling wait, but poll every 1 ms instead of every 10 ms."""

    input_sleep = 0.001


@dataclass(frozen=True)
class Variant:
    """One way to build the client: which of connect()'s settings it has."""

    name: str
    nodelay: bool
    runner: str  # "poll" (invoke's 10 ms), "poll 1ms", or "prompt" (connect()'s: woken by the exit status)
    no_stdin: bool
    ours: bool = False


VARIANTS = (
    Variant("plain fabric Connection", nodelay=False, runner="poll", no_stdin=False),
    Variant("plain + in_stream=False", nodelay=False, runner="poll", no_stdin=True),
    Variant("plain + TCP_NODELAY", nodelay=True, runner="poll", no_stdin=False),
    Variant("plain + TCP_NODELAY + in_stream=False", nodelay=True, runner="poll", no_stdin=True),
    Variant("... + input_sleep=1ms instead of prompt", nodelay=True, runner="poll 1ms", no_stdin=True),
    Variant("dumont config, no TCP_NODELAY", nodelay=False, runner="prompt", no_stdin=True),
    Variant("dumont connect()", nodelay=True, runner="prompt", no_stdin=True, ours=True),
)


@contextmanager
def emulated_instance(workdir: Path, key: SessionKey) -> Iterator[ssh.SSHTarget]:
    """An emulated instance's SSH server on 127.0.0.1 that accepts ``key``."""
    import asyncssh

    from pytest_dumont.emulator.loop import LoopThread
    from pytest_dumont.emulator.sandbox import GpuFacts, Sandbox
    from pytest_dumont.emulator.sshd import InstanceSSH

    loop = LoopThread()
    loop.start()
    sandbox = Sandbox(workdir / "sandbox", GpuFacts())
    server = InstanceSSH(loop, sandbox, asyncssh.generate_private_key("ssh-ed25519"))
    try:
        server.authorize(key.public_openssh)
        server.open()
        yield ssh.SSHTarget("127.0.0.1", server.port)
    finally:
        server.release()
        sandbox.cleanup()
        loop.stop()


def build(variant: Variant, target: ssh.SSHTarget, key: SessionKey, known_hosts: Path) -> fabric.Connection:
    """Open a connection the way ``variant`` says."""
    if variant.ours:
        return ssh.connect(target, key, known_hosts)
    sock = socket.create_connection((target.host, target.port), timeout=10)
    if variant.nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect_kwargs: dict[str, Any] = {
        "sock": sock,
        "key_filename": str(key.private_path),
        "look_for_keys": False,
        "allow_agent": False,
    }
    if variant.runner != "poll" or variant.no_stdin:
        overrides: dict[str, Any] = {}
        if variant.runner != "prompt":
            remote = FastPollRemote if variant.runner == "poll 1ms" else fabric.runners.Remote
            overrides["runners"] = {"remote": remote, "remote_shell": fabric.runners.RemoteShell}
        if not variant.no_stdin:
            overrides["run"] = {}
        config = ssh.session_config(**overrides)
    else:
        config = fabric.Config()  # what a user gets from fabric.Connection(host) without a config
    conn = fabric.Connection(
        target.host, user=target.user, port=target.port, config=config, connect_kwargs=connect_kwargs
    )
    conn.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    conn.open()
    return conn


def measure(conn: fabric.Connection, runs: int, warmup: int) -> list[float]:
    """Seconds per sequential ``run("true", hide=True)``, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        conn.run("true", hide=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        conn.run("true", hide=True)
        times.append(time.perf_counter() - start)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def table(rows: list[tuple[Variant, list[float]]]) -> str:
    """Median, p95 and ratio to ``connect()`` for each variant, in milliseconds."""
    ours = statistics.median(next(times for variant, times in rows if variant.ours))
    header = f"{'variant':<42} {'NODELAY':>7} {'runner':>8} {'stdin':>5} {'median ms':>10} {'p95 ms':>8} {'x ours':>7}"
    lines = [header, "-" * len(header)]
    for variant, times in rows:
        median = statistics.median(times)
        lines.append(
            f"{variant.name:<42} {_yes(variant.nodelay):>7} {variant.runner:>8} "
            f"{'off' if variant.no_stdin else 'on':>5} {median * 1e3:>10.2f} {p95(times) * 1e3:>8.2f} "
            f"{median / ours:>7.1f}"
        )
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main(argv: list[str] | None = None, instance: Callable[..., Any] = emulated_instance) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=300, help="timed commands per variant")
    parser.add_argument("--warmup", type=int, default=20, help="untimed commands per variant first")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dumont-bench-") as tmp:
        workdir = Path(tmp)
        key = SessionKey.generate(workdir / "key", "dumont-bench")
        with instance(workdir, key) as target:
            rows = []
            for variant in VARIANTS:
                conn = build(variant, target, key, workdir / "known_hosts")
                try:
                    rows.append((variant, measure(conn, args.runs, args.warmup)))
                finally:
                    conn.close()
    print(f"sequential run('true', hide=True) over loopback SSH, {args.runs} runs per variant ({args.warmup} warmup)")
    print(table(rows))
    plain = statistics.median(rows[0][1])
    ours = statistics.median(next(times for variant, times in rows if variant.ours))
    print(f"\nplain fabric / dumont connect(): {plain / ours:.1f}x median ({plain * 1e3:.2f} -> {ours * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
