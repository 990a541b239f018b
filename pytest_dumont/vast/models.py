"""Typed views of what the Vast.ai API returns, and of what a run measures.

The API omits fields and sends ``null`` freely (``actual_status`` is null for the first seconds of an instance's
life: a client that reads it as a string crashes there), so every ``from_api`` tolerates missing keys and nulls, and
keeps the raw mapping for anything not modelled here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Statuses after which waiting for "running" is pointless (vast-api.md section 11).
TERMINAL_STATUSES = frozenset({"exited", "offline", "stopped"})
# status_msg words that mean the container will not come up (the official CLI's self-test uses the same list).
STATUS_MSG_ERROR_WORDS = (
    "error",
    "failed",
    "failure",
    "exception",
    "traceback",
    "oci runtime",
    "permission denied",
)


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _opt_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Offer:
    """One rentable machine (an "ask") as returned by the offer search."""

    id: int
    gpu_name: str
    num_gpus: int
    gpu_ram_mb: float
    dph_base: float
    dph_total: float
    storage_cost: float  # $/GB/month
    disk_space: float  # GB available
    reliability: float
    geolocation: str | None
    verified: bool
    machine_id: int | None
    host_id: int | None
    cuda_max_good: float | None
    driver_version: str | None
    inet_up_cost: float  # $/GB
    inet_down_cost: float  # $/GB
    min_bid: float | None = None  # $/h: the lowest bid an interruptible rental of this machine may make now
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Offer:
        verification = data.get("verification")
        verified = data.get("verified")
        return cls(
            id=_int(data.get("id", data.get("ask_contract_id"))),
            gpu_name=str(data.get("gpu_name") or "unknown GPU"),
            num_gpus=_int(data.get("num_gpus"), 1),
            gpu_ram_mb=_float(data.get("gpu_ram")),
            dph_base=_float(data.get("dph_base")),
            dph_total=_float(data.get("dph_total")),
            storage_cost=_float(data.get("storage_cost")),
            disk_space=_float(data.get("disk_space")),
            reliability=_float(data.get("reliability", data.get("reliability2"))),
            geolocation=_opt_str(data.get("geolocation")),
            verified=bool(verified) if verified is not None else verification == "verified",
            machine_id=_int(data["machine_id"]) if data.get("machine_id") is not None else None,
            host_id=_int(data["host_id"]) if data.get("host_id") is not None else None,
            cuda_max_good=_opt_float(data.get("cuda_max_good")),
            driver_version=_opt_str(data.get("driver_version")),
            inet_up_cost=_float(data.get("inet_up_cost")),
            inet_down_cost=_float(data.get("inet_down_cost")),
            min_bid=_opt_float(data.get("min_bid")),
            raw=dict(data),
        )

    def storage_dph(self, disk_gb: float) -> float:
        """Storage price in $/h for ``disk_gb`` (Vast prices storage per GB per 30-day month)."""
        return disk_gb * self.storage_cost / 720.0


@dataclass(frozen=True)
class Instance:
    """One rented instance as ``GET /api/v0/instances/{id}/`` shows it at one moment."""

    id: int
    actual_status: str | None  # None: not yet known (normal for the first seconds)
    intended_status: str | None
    cur_state: str | None
    status_msg: str | None
    label: str | None
    gpu_name: str | None
    num_gpus: int
    dph_base: float
    dph_total: float
    storage_total_cost: float  # $/h
    disk_space: float
    ssh_host: str | None
    ssh_port: int | None
    public_ipaddr: str | None
    direct_ssh_port: int | None  # from ports["22/tcp"][0]["HostPort"], only while running
    machine_id: int | None
    start_date: float | None
    uptime_seconds: float | None  # how long it has been running, from uptime_mins; None when not running
    is_bid: bool = False  # interruptible: a higher bid for its machine stops it
    min_bid: float | None = None  # $/h: the lowest bid its machine takes now (raised when it was outbid)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Instance:
        return cls(
            id=_int(data.get("id")),
            actual_status=_opt_str(data.get("actual_status")),
            intended_status=_opt_str(data.get("intended_status")),
            cur_state=_opt_str(data.get("cur_state")),
            status_msg=_opt_str(data.get("status_msg")),
            label=_opt_str(data.get("label")),
            gpu_name=_opt_str(data.get("gpu_name")),
            num_gpus=_int(data.get("num_gpus"), 1),
            dph_base=_float(data.get("dph_base")),
            dph_total=_float(data.get("dph_total")),
            storage_total_cost=_float(data.get("storage_total_cost")),
            disk_space=_float(data.get("disk_space")),
            ssh_host=_opt_str(data.get("ssh_host")),
            ssh_port=_int(data["ssh_port"]) if data.get("ssh_port") is not None else None,
            public_ipaddr=_opt_str(data.get("public_ipaddr")),
            direct_ssh_port=_direct_ssh_port(data.get("ports")),
            machine_id=_int(data["machine_id"]) if data.get("machine_id") is not None else None,
            start_date=_opt_float(data.get("start_date")),
            uptime_seconds=_uptime_seconds(data.get("uptime_mins")),
            is_bid=data.get("is_bid") is True,
            min_bid=_opt_float(data.get("min_bid")),
            raw=dict(data),
        )

    @property
    def status(self) -> str:
        """``actual_status`` for display: ``"unknown"`` while the API says null."""
        return self.actual_status or "unknown"

    @property
    def is_running(self) -> bool:
        return self.actual_status == "running" and self.intended_status in (None, "running")

    def failure_reason(self) -> str | None:
        """Why this instance will never reach running, or None while it still might."""
        if self.actual_status in TERMINAL_STATUSES:
            return f"status {self.actual_status}"
        if self.intended_status in ("stopped", "exited"):
            return f"intended status {self.intended_status}"
        msg = (self.status_msg or "").lower()
        for word in STATUS_MSG_ERROR_WORDS:
            if word in msg:
                return f"status_msg reports {word!r}"
        return None

    def ssh_address(self) -> tuple[str, int] | None:
        """Where to reach SSH: the direct port when mapped, else the proxy (as the official CLI chooses)."""
        if self.public_ipaddr and self.direct_ssh_port:
            return self.public_ipaddr.strip(), self.direct_ssh_port
        if self.ssh_host and self.ssh_port:
            return self.ssh_host, self.ssh_port
        return None


def _uptime_seconds(minutes: Any) -> float | None:
    value = _opt_float(minutes)
    return value * 60.0 if value is not None and value >= 0 else None


def _direct_ssh_port(ports: Any) -> int | None:
    if not isinstance(ports, Mapping):
        return None
    bindings = ports.get("22/tcp")
    if not isinstance(bindings, list) or not bindings or not isinstance(bindings[0], Mapping):
        return None
    host_port = bindings[0].get("HostPort")
    try:
        return int(host_port) if host_port is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StatusChange:
    """The first time a poll saw a new ``actual_status`` (seconds since the create call returned)."""

    at: float
    status: str  # "unknown" for null
    status_msg: str | None = None
