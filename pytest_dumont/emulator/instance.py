"""One instance's record: the create request it came from, its state and billing counters, and its API row."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ApiError, invalid_args
from .hosts import InstanceHost
from .profiles import Schedule
from .query import price_breakdown, storage_hourly

# The CLI sends "ssh_direc ssh_proxy": *_direc (sic), space-separated; the docs spell it *_direct.
RUNTYPE_WORDS = (
    "ssh",
    "ssh_proxy",
    "ssh_direc",
    "ssh_direct",
    "jupyter",
    "jupyter_proxy",
    "jupyter_direc",
    "jupyter_direct",
    "args",
)


# Runtype words that map ports on the machine's public IP (vast-api.md section 3): SSH's 22, Jupyter's 8080 too.
DIRECT_PORTS = {"ssh_direc": (22,), "ssh_direct": (22,), "jupyter_direc": (8080, 22), "jupyter_direct": (8080, 22)}


def port_flag(flag: str) -> tuple[int, str] | None:
    """``"-p 8080:8080"`` (docker's forms: ``-p 8080``, ``-p 1.2.3.4:80:8080``, ``/udp``) -> ``(8080, "tcp")``."""
    if not flag.startswith("-p "):
        return None
    spec, _, proto = flag[3:].strip().partition("/")
    container = spec.rsplit(":", 1)[-1]
    if not container.isdigit() or not 1 <= int(container) <= 65535 or proto not in ("", "tcp", "udp"):
        raise invalid_args(f"env flag {flag!r} is not a port mapping such as '-p 8080:8080'")
    return int(container), proto or "tcp"


class Cancellable(Protocol):
    """A pending scheduled transition, as ``Scheduler.call_later`` returns it."""

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class CreateRequest:
    """What ``PUT /asks/{id}/`` asks for, checked the way the API checks it (400 ``invalid_args``)."""

    image: str | None = None
    disk: float = 10.0
    label: str | None = None
    runtype: str = "ssh"
    env: Mapping[str, str] = field(default_factory=dict)
    onstart: str | None = None
    args: list[Any] | None = None
    price: float | None = None  # a bid ($/h) makes an interruptible instance; None is on-demand
    template_hash_id: str | None = None

    def __post_init__(self) -> None:
        if not self.image and not self.template_hash_id:
            raise invalid_args("image is required (or template_hash_id)")
        if self.image is not None and len(self.image) > 1024:
            raise invalid_args("image is longer than 1024 characters")
        if not self.disk >= 1:
            raise invalid_args(f"disk must be a number of GB >= 1, got {self.disk!r}")
        if self.label is not None and len(self.label) > 256:
            raise invalid_args("label is longer than 256 characters")
        words = self.runtype.split()
        if not words or any(w not in RUNTYPE_WORDS for w in words):
            raise invalid_args(f"runtype {self.runtype!r} is not one of: {', '.join(RUNTYPE_WORDS)}")
        if self.price is not None and not 0.001 <= self.price <= 128:
            raise invalid_args(f"price must be between 0.001 and 128 $/h, got {self.price!r}")
        script = len(self.onstart or "") + sum(len(str(a)) for a in self.args or [])
        if script > 4096:
            raise invalid_args("args and onstart together are longer than 4096 characters")
        for flag in self.env:
            port_flag(str(flag))  # a malformed -p is a 400

    @property
    def mapped_ports(self) -> tuple[int, ...]:
        """Container TCP ports the instance exposes directly: its runtype's, then ``-p`` flags in env, in order."""
        ports: list[int] = [p for word in self.runtype.split() for p in DIRECT_PORTS.get(word, ())]
        for flag in self.env:
            parsed = port_flag(str(flag))
            if parsed is not None and parsed[1] == "tcp":  # UDP mappings are not emulated
                ports.append(parsed[0])
        return tuple(dict.fromkeys(ports))

    @property
    def main_command(self) -> str | None:
        """What runtype ``args`` runs as the container's process: ``onstart`` as the program, then ``args``.

        dstack sends ``"onstart": "/bin/sh", "args": ["-c", "<setup>"]``. Without ``onstart`` the image's own
        entrypoint would come first; the emulator has no image, so ``args`` run as a command on their own.
        """
        if "args" not in self.runtype.split():
            return None
        argv = [*shlex.split(self.onstart or ""), *(str(a) for a in self.args or [])]
        return shlex.join(argv) if argv else None

    @property
    def env_vars(self) -> dict[str, str]:
        """Variables only: docker flags ride in env as ``{"-p 8080:8080": "1"}`` and are not variables."""
        return {str(k): str(v) for k, v in self.env.items() if not str(k).startswith("-")}


@dataclass(eq=False)
class Instance:
    """One rented instance, from create to destroy, with its timeline and billing counters."""

    id: int
    offer: dict[str, Any]
    api_key: str
    host: InstanceHost
    schedule: Schedule
    request: CreateRequest
    label: str | None
    fault: str | None
    created_mono: float
    created_wall: float
    actual_status: str | None = None
    intended_status: str = "running"
    cur_state: str = "running"
    next_state: str = "running"
    status_msg: str | None = None
    ssh_up: bool = False
    gpu_util: float | None = None
    epoch: int = 0
    pending: Cancellable | None = None
    running_since: float | None = None
    gpu_seconds: float = 0.0
    destroyed_mono: float | None = None
    destroyed_wall: float | None = None
    keys: dict[int, str] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dph_base(self) -> float:
        price = self.request.price
        return float(price if price is not None else self.offer["dph_base"])

    @property
    def storage_total_cost(self) -> float:
        return storage_hourly(self.request.disk, float(self.offer["storage_cost"]))

    def add_key(self, public_key: str) -> None:
        if public_key not in self.keys.values():
            try:
                self.host.authorize(public_key)
            except ValueError as exc:
                raise ApiError(400, "invalid_args", f"ssh_key was refused: {exc}") from None
            self.keys[max(self.keys, default=0) + 1] = public_key

    def bump(self) -> None:
        """Invalidate whatever transition is pending (stop, start, reboot, force, destroy)."""
        self.epoch += 1
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None

    def stop_gpu_clock(self, now: float) -> None:
        if self.running_since is not None:
            self.gpu_seconds += now - self.running_since
            self.running_since = None

    def record(self, now: float, wall: float, mark: str | None) -> None:
        if mark is not None:
            self.marks[f"{mark}_at"] = wall
        self.transitions.append(
            {
                "actual_status": self.actual_status,
                "intended_status": self.intended_status,
                "status_msg": self.status_msg,
                "ssh_up": self.ssh_up,
                "event": mark,
                "at": wall,
                "monotonic": now,
                "since_create": now - self.created_mono,
            }
        )

    def describe(self) -> str:
        return f"actual_status={self.actual_status}, intended_status={self.intended_status}, ssh_up={self.ssh_up}"

    def charges(self, now: float) -> dict[str, Any]:
        """Billing so far, in real seconds: GPU while running (across stop/start), storage while it exists."""
        end = self.destroyed_mono if self.destroyed_mono is not None else now
        running = (end - self.running_since) if self.running_since is not None else 0.0
        gpu_seconds = self.gpu_seconds + running
        storage_seconds = end - self.created_mono
        gpu_cost = self.dph_base * gpu_seconds / 3600.0
        storage_cost = self.storage_total_cost * storage_seconds / 3600.0
        return {
            "id": self.id,
            "label": self.label,
            "offer_id": self.offer["id"],
            "gpu_name": self.offer["gpu_name"],
            "dph_base": self.dph_base,
            "storage_total_cost": self.storage_total_cost,
            "dph_total": self.dph_base + self.storage_total_cost,
            "gpu_seconds": gpu_seconds,
            "storage_seconds": storage_seconds,
            "gpu_cost": gpu_cost,
            "storage_cost": storage_cost,
            "cost": gpu_cost + storage_cost,
            "destroyed": self.destroyed_mono is not None,
        }

    def history(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "offer_id": self.offer["id"],
            "label": self.label,
            "gpu_name": self.offer["gpu_name"],
            "status": self.actual_status,
            "intended": self.intended_status,
            "status_msg": self.status_msg,
            "ssh_up": self.ssh_up,
            "ssh_port": self.host.port,
            "fault": self.fault,
            "schedule": self.schedule.to_dict(),
            "created_at": self.created_wall,
            "loading_at": self.marks.get("loading_at"),
            "running_at": self.marks.get("running_at"),
            "ssh_up_at": self.marks.get("ssh_up_at"),
            "stopped_at": self.marks.get("stopped_at"),
            "destroyed_at": self.destroyed_wall,
            "destroyed": self.destroyed_mono is not None,
            "transitions": [dict(t) for t in self.transitions],
            "cost": self.charges(now)["cost"],
            "charges": self.charges(now),
        }


def instance_row(inst: Instance, wall: float, now: float) -> dict[str, Any]:
    """The instance as ``GET /instances/{id}/`` and the v1 list return it (vast-api.md section 4)."""
    offer, request = inst.offer, inst.request
    running = inst.actual_status == "running"
    port = inst.host.port
    direct = inst.host.direct_ports  # container port -> port on the public (direct) address
    gpu_hourly = inst.dph_base if running else 0.0
    uptime = (now - inst.running_since) / 60.0 if inst.running_since is not None else None
    row: dict[str, Any] = {
        "id": inst.id,
        "actual_status": inst.actual_status,
        "intended_status": inst.intended_status,
        "cur_state": inst.cur_state,
        "next_state": inst.next_state,
        "status_msg": inst.status_msg,
        "label": inst.label,
        "image_uuid": request.image,
        "image_runtype": request.runtype,
        "image_args": list(request.args or []),
        "extra_env": [[k, v] for k, v in request.env_vars.items()],
        "onstart": request.onstart,
        "template_id": None,
        "template_hash_id": request.template_hash_id,
        "template_name": None,
        "ssh_host": "127.0.0.1",
        # The CLI connects to ssh_port + 1 when "jupyter" is in the runtype: keep that arithmetic right.
        "ssh_port": port - 1 if "jupyter" in request.runtype else port,
        "ssh_idx": "0",
        # The proxy (ssh_host:ssh_port) and the direct endpoint (public_ipaddr + ports["22/tcp"]) differ, as on Vast.
        "machine_dir_ssh_port": direct.get(22),
        "public_ipaddr": inst.host.direct_ip,
        "local_ipaddrs": inst.host.direct_ip,
        # HostPort is a string, and ports exist only while running.
        "ports": (
            {f"{c}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(h)}] for c, h in direct.items()}  # noqa: S104
            if running
            else None
        ),
        "direct_port_start": min(direct.values(), default=None),
        "direct_port_end": max(direct.values(), default=None),
        "direct_port_count": offer.get("direct_port_count"),
        "machine_id": offer["machine_id"],
        "host_id": offer["host_id"],
        "bundle_id": offer["bundle_id"],
        "start_date": inst.created_wall,
        "end_date": offer.get("end_date"),
        "duration": wall - inst.created_wall,
        "uptime_mins": uptime,
        "num_gpus": offer["num_gpus"],
        "gpu_name": offer["gpu_name"],
        "gpu_ram": offer["gpu_ram"],
        "gpu_totalram": offer.get("gpu_total_ram"),
        "gpu_util": inst.gpu_util if running else None,
        "gpu_temp": 38.0 if running else None,
        "gpu_frac": offer.get("gpu_frac", 1.0),
        "gpu_arch": offer.get("gpu_arch"),
        "compute_cap": offer.get("compute_cap"),
        "total_flops": offer.get("total_flops"),
        "dlperf": offer.get("dlperf"),
        "cpu_name": offer.get("cpu_name"),
        "cpu_cores": offer.get("cpu_cores"),
        "cpu_cores_effective": offer.get("cpu_cores_effective"),
        "cpu_ram": offer.get("cpu_ram"),
        "cpu_util": 0.0 if running else None,
        "mem_usage": None,
        "mem_limit": None,
        "disk_space": request.disk,
        "disk_usage": -1,
        "disk_util": -1,
        "disk_bw": offer.get("disk_bw"),
        "disk_name": offer.get("disk_name"),
        "dph_base": inst.dph_base,
        "dph_total": inst.dph_base + inst.storage_total_cost,
        "storage_cost": offer["storage_cost"],
        "storage_total_cost": inst.storage_total_cost,
        "inet_up": offer.get("inet_up"),
        "inet_down": offer.get("inet_down"),
        "inet_up_cost": offer.get("inet_up_cost"),
        "inet_down_cost": offer.get("inet_down_cost"),
        "internet_up_cost_per_tb": offer.get("internet_up_cost_per_tb"),
        "internet_down_cost_per_tb": offer.get("internet_down_cost_per_tb"),
        "inet_up_billed": 0.0,
        "inet_down_billed": 0.0,
        "search": price_breakdown(inst.dph_base, inst.storage_total_cost),
        "instance": price_breakdown(gpu_hourly, inst.storage_total_cost),
        "is_bid": request.price is not None,
        "min_bid": offer.get("min_bid"),
        "reliability2": offer.get("reliability2"),
        "verification": offer.get("verification"),
        "geolocation": offer.get("geolocation"),
        "static_ip": offer.get("static_ip"),
        "cuda_max_good": offer.get("cuda_max_good"),
        "driver_version": offer.get("driver_version"),
        "jupyter_token": None,
        "time_remaining": None,
        "volume_info": None,
    }
    return row
