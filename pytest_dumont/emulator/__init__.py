"""A local emulator of the Vast.ai API with real SSH servers, so that everything runs offline.

    with Emulator(profile="fast") as emu:
        requests.post(f"{emu.url}/api/v0/bundles/", json={...}, headers={"Authorization": f"Bearer {emu.api_key}"})

Runtime modules never import this package; the plugin's emulator mode loads it lazily.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from .api import EmulatorServer
from .errors import ApiError
from .faults import CREATE_FAULTS, Faults
from .hosts import HostSpec, InstanceHost
from .instance import Cancellable, CreateRequest
from .loop import LoopThread
from .market import MarketError, load_market, nvidia_facts
from .profiles import FAST, MANUAL, PROFILES, SEED, BootProfile, Schedule, schedule
from .world import World

__all__ = [
    "CREATE_FAULTS",
    "FAST",
    "MANUAL",
    "PROFILES",
    "SEED",
    "ApiError",
    "BootProfile",
    "CreateRequest",
    "Emulator",
    "Faults",
    "MarketError",
    "Schedule",
    "World",
]

log = logging.getLogger(__name__)


class _Timeline:
    """Runs scheduled transitions off the loop's thread: they open and close SSH servers, which block on the loop."""

    def __init__(self, loop: LoopThread) -> None:
        self._loop = loop
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dumont-emulator-timeline")

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> Cancellable:
        return self._loop.call_later(delay, self._submit, fn, args)

    def _submit(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        with contextlib.suppress(RuntimeError):  # the pool is shut down: the emulator is stopping
            self._pool.submit(self._run, fn, args)

    @staticmethod
    def _run(fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("emulator transition %s failed", getattr(fn, "__name__", fn))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _SandboxHost:
    """One instance's machine: a sandbox (files, processes, fake nvidia-smi) behind its own SSH server (the proxy
    endpoint) and one forwarder per directly mapped port (``portmap.py``), which open and close together."""

    def __init__(self, sandbox: Any, ssh: Any, forwarders: Mapping[int, Any], direct_ip: str) -> None:
        self.sandbox = sandbox
        self.ssh = ssh
        self.forwarders = dict(forwarders)
        self.direct_ip = direct_ip

    @property
    def port(self) -> int:
        port: int = self.ssh.port
        return port

    @property
    def direct_ports(self) -> dict[int, int]:
        return {container: fwd.port for container, fwd in self.forwarders.items()}

    def authorize(self, public_key: str) -> None:
        self.ssh.authorize(public_key)

    def open(self) -> None:
        self.ssh.open()
        for fwd in self.forwarders.values():
            fwd.open()

    def close(self) -> None:
        for fwd in self.forwarders.values():
            fwd.close()
        self.ssh.close()
        self.sandbox.kill_all()  # the onstart's processes too, even when SSH never came up

    def run_onstart(self, script: str) -> None:
        self.sandbox.spawn(script, log_name="onstart.log")

    def run_main(self, command: str) -> None:
        self.sandbox.spawn(command, log_name="args.log")

    def release(self) -> None:
        try:
            for fwd in self.forwarders.values():
                fwd.release()
            self.ssh.release()
        finally:
            self.sandbox.cleanup()

    def set_gpu_utilization(self, percent: float) -> None:
        self.sandbox.set_gpu_utilization(percent)


class _SandboxHosts:
    """Host factory for ``ssh=True``: ``C.<id>/`` under the work directory, one SSH server per instance."""

    def __init__(self, loop: LoopThread, workdir: Path, host_key: Any) -> None:
        self._loop = loop
        self._workdir = workdir
        self._host_key = host_key

    def __call__(self, spec: HostSpec) -> InstanceHost:
        from .portmap import PortForwarder, direct_host
        from .sandbox import GpuFacts, Sandbox
        from .sshd import InstanceSSH

        name, driver, memory, count = nvidia_facts(spec.offer)
        ip = direct_host()
        forwarders = {port: PortForwarder(self._loop, ip, ("127.0.0.1", port)) for port in spec.ports}
        env = {
            **spec.env,
            "CONTAINER_ID": str(spec.instance_id),
            "VAST_CONTAINERLABEL": f"C.{spec.instance_id}",
            "CONTAINER_API_KEY": spec.api_key,
            "PUBLIC_IPADDR": ip,
            **{f"VAST_TCP_PORT_{port}": str(fwd.port) for port, fwd in forwarders.items()},
        }
        try:
            sandbox = Sandbox(self._workdir / f"C.{spec.instance_id}", GpuFacts(name, driver, memory, count), env)
        except BaseException:
            for fwd in forwarders.values():
                fwd.release()
            raise
        try:
            modules = (f"C.{spec.instance_id}", str(spec.instance_id))  # `vastai copy` names it either way
            ssh = InstanceSSH(self._loop, sandbox, self._host_key, rsync_modules=modules)
        except BaseException:
            for fwd in forwarders.values():
                fwd.release()
            sandbox.cleanup()
            raise
        if 22 in forwarders:
            forwarders[22].target = ("127.0.0.1", ssh.port)  # the direct SSH port reaches the instance's sshd
        return _SandboxHost(sandbox, ssh, forwarders, ip)


def _host_key() -> Any:
    try:
        from .quiet_asyncssh import asyncssh
    except ImportError:
        raise RuntimeError(
            "the emulator's SSH servers need asyncssh: pip install 'pytest-dumont[emulator]' (or use ssh=False)"
        ) from None
    return asyncssh.generate_private_key("ssh-ed25519")


class Emulator:
    """The Vast.ai emulator in this process: an HTTP server on ``url`` that accepts ``api_key``.

    ``stop()`` (or leaving the ``with`` block) destroys every live instance, closes the SSH servers, removes the
    sandboxes and joins the threads; it is idempotent.
    """

    def __init__(
        self,
        api_key: str | None = None,
        profile: str | BootProfile = "fast",
        time_factor: float = 1.0,
        market: str | Path | Sequence[Mapping[str, Any]] | None = None,
        faults: Faults | None = None,
        rate_limit: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssh: bool = True,
        workdir: Path | None = None,
    ) -> None:
        self.api_key = api_key or f"emu-{secrets.token_hex(16)}"
        self._schedule = schedule(profile, time_factor)
        self._market = load_market(market)
        self._faults = faults
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 requests per second, got {rate_limit!r}")
        self._rate_limit = rate_limit
        self._address = (host, port)
        self._ssh = ssh
        self._workdir = Path(workdir) if workdir is not None else None
        self._owns_workdir = False
        self._loop: LoopThread | None = None
        self._timeline: _Timeline | None = None
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._world: World | None = None
        self._lock = threading.Lock()

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("the emulator is not started")
        return self._world

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def environ(self) -> dict[str, str]:
        """What the official CLI and pytest-dumont's client need to talk to this emulator."""
        return {"VAST_URL": self.url, "VAST_API_KEY": self.api_key}

    def start(self) -> Emulator:
        """Start the loop, the world and the HTTP server; on failure, tear down whatever had started."""
        with self._lock:
            if self._server is not None:
                return self
            try:
                self._start()
            except BaseException:
                self._stop()
                raise
        return self

    def _start(self) -> None:
        self._loop = LoopThread()
        self._loop.start()
        self._timeline = _Timeline(self._loop)
        factory: Callable[[HostSpec], InstanceHost] | None = None
        if self._ssh:
            if self._workdir is None:
                self._workdir = Path(tempfile.mkdtemp(prefix="dumont-emulator-"))
                self._owns_workdir = True
            self._workdir.mkdir(parents=True, exist_ok=True)
            factory = _SandboxHosts(self._loop, self._workdir, _host_key())
        world_options: dict[str, Any] = {"market": self._market, "schedule": self._schedule, "faults": self._faults}
        if factory is not None:
            world_options["host_factory"] = factory
        self._world = World(self._timeline, **world_options)
        self._server = EmulatorServer(self._address, self._world, self.api_key, self._rate_limit)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="dumont-emulator-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, destroy every live instance, remove sandboxes, join threads. Idempotent."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._world is not None:
            self._world.shutdown()
        if self._timeline is not None:
            self._timeline.shutdown()
            self._timeline = None
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._owns_workdir = False

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_log_requests(self, enabled: bool) -> None:
        """Log each HTTP request to stderr (the standalone emulator does)."""
        if self._server is not None:
            self._server.log_requests = enabled
