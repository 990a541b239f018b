"""The machine behind an instance: what the world needs of it, what a factory is told, and the SSH-less stand-in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class InstanceHost(Protocol):
    """What an instance needs of its machine: an SSH server (``InstanceSSH`` + ``Sandbox``) or a stand-in."""

    @property
    def port(self) -> int: ...

    def authorize(self, public_key: str) -> None: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def release(self) -> None: ...

    def set_gpu_utilization(self, percent: float) -> None: ...

    def run_onstart(self, script: str) -> None: ...


@dataclass(frozen=True)
class HostSpec:
    """What a host factory is told about a new instance."""

    instance_id: int
    offer: Mapping[str, Any]
    api_key: str  # the restricted per-instance key, CONTAINER_API_KEY inside the container
    env: Mapping[str, str]  # the create request's env vars (docker flags such as "-p 80:80" removed)


class PortOnlyHost:
    """An instance without an SSH server (``ssh=False``): a made-up port, keys and open state kept for tests."""

    def __init__(self, spec: HostSpec) -> None:
        self.port = 40000 + spec.instance_id % 20000
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
