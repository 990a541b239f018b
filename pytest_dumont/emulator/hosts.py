"""The machine behind an instance: what the world needs of it, what a factory is told, and the SSH-less stand-in."""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

_DIRECT_CANDIDATE = "127.0.0.2"


@functools.cache
def direct_host() -> str:
    """The instances' public address, where direct ports listen: 127.0.0.2, a second loopback address, when this
    host lets us bind it (Linux does), so that it differs from the proxy's 127.0.0.1; else 127.0.0.1 itself."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((_DIRECT_CANDIDATE, 0))
    except OSError:
        return "127.0.0.1"
    return _DIRECT_CANDIDATE


class InstanceHost(Protocol):
    """What an instance needs of its machine: an SSH server (``InstanceSSH`` + ``Sandbox``) or a stand-in."""

    @property
    def port(self) -> int: ...

    @property
    def direct_ip(self) -> str: ...

    @property
    def direct_ports(self) -> Mapping[int, int]: ...

    def authorize(self, public_key: str) -> None: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def release(self) -> None: ...

    def set_gpu_utilization(self, percent: float) -> None: ...

    def run_onstart(self, script: str) -> None: ...

    def run_main(self, command: str) -> None: ...


@dataclass(frozen=True)
class HostSpec:
    """What a host factory is told about a new instance."""

    instance_id: int
    offer: Mapping[str, Any]
    api_key: str  # the restricted per-instance key, CONTAINER_API_KEY inside the container
    env: Mapping[str, str]  # the create request's env vars (docker flags such as "-p 80:80" removed)
    ports: tuple[int, ...] = ()  # container TCP ports mapped on the direct address (22 for *_direc runtypes)


class PortOnlyHost:
    """An instance without an SSH server (``ssh=False``): a made-up port, keys and open state kept for tests."""

    def __init__(self, spec: HostSpec) -> None:
        self.port = 40000 + spec.instance_id % 20000
        self.direct_ip = direct_host()
        self.direct_ports = {c: 20000 + (spec.instance_id * 8 + i) % 20000 for i, c in enumerate(spec.ports)}
        self.mains: list[str] = []
        self.is_open = False
        self.keys: list[str] = []
        self.gpu_utilization = 0.0
        self.onstarts: list[str] = []

    def authorize(self, public_key: str) -> None:
        self.keys.append(public_key)

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def release(self) -> None:
        self.is_open = False

    def set_gpu_utilization(self, percent: float) -> None:
        self.gpu_utilization = percent

    def run_onstart(self, script: str) -> None:
        self.onstarts.append(script)  # nothing runs without a sandbox: recorded for tests

    def run_main(self, command: str) -> None:
        self.mains.append(command)
