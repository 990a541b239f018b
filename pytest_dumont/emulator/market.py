"""The catalogue of offers the emulator rents out: the bundled default market, or one loaded from JSON.

A market file is ``{"offers": [...]}`` or a bare list. Each offer needs the fields in ``REQUIRED``; every other
field a client may read (CPU, network, ids, derived GPU figures) is filled in here, so files stay short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_MARKET = "market.json"


class MarketError(ValueError):
    """A market file or list that cannot be used, with the offer and field at fault."""


@dataclass(frozen=True)
class GpuModel:
    """What ``nvidia-smi`` and the offer listing say about one GPU model."""

    nvidia_name: str
    memory_mib: int
    compute_cap: int
    tflops: float
    dlperf: float
    mem_bw: float


# Keyed by Vast's gpu_name (spaces, no "NVIDIA"). Memory is what nvidia-smi reports, in MiB.
GPU_MODELS: dict[str, GpuModel] = {
    "RTX 4090": GpuModel("NVIDIA GeForce RTX 4090", 24564, 890, 82.6, 71.2, 1008.0),
    "RTX 3090": GpuModel("NVIDIA GeForce RTX 3090", 24576, 860, 35.6, 36.1, 936.2),
    "RTX 5090": GpuModel("NVIDIA GeForce RTX 5090", 32607, 1200, 104.8, 98.4, 1792.0),
    "RTX A6000": GpuModel("NVIDIA RTX A6000", 49140, 860, 38.7, 39.5, 768.0),
    "A100 SXM4": GpuModel("NVIDIA A100-SXM4-80GB", 81920, 800, 19.5, 83.3, 2039.0),
    "A100 PCIE": GpuModel("NVIDIA A100 80GB PCIe", 81920, 800, 19.5, 76.0, 1935.0),
    "H100 SXM": GpuModel("NVIDIA H100 80GB HBM3", 81559, 900, 66.9, 181.2, 3350.0),
    "L4": GpuModel("NVIDIA L4", 23034, 890, 30.3, 21.8, 300.0),
}

REQUIRED: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "gpu_name": (str,),
    "num_gpus": (int,),
    "dph_base": (int, float),
    "storage_cost": (int, float),
    "disk_space": (int, float),
    "reliability": (int, float),
}

_DEFAULTS: dict[str, Any] = {
    "verification": "verified",
    "geolocation": "Texas, US",
    "driver_version": "570.86.15",
    "cuda_max_good": 12.8,
    "cpu_name": "AMD EPYC 7543 32-Core Processor",
    "cpu_arch": "amd64",
    "cpu_cores": 64,
    "cpu_cores_effective": 16.0,
    "cpu_ghz": 3.7,
    "cpu_ram": 128000,
    "disk_bw": 2650.0,
    "disk_name": "Samsung SSD 990 PRO 2TB",
    "inet_up": 850.0,
    "inet_down": 920.0,
    "inet_up_cost": 0.004,
    "inet_down_cost": 0.004,
    "direct_port_count": 120,
    "pcie_bw": 24.8,
    "pci_gen": 4.0,
    "has_avx": 1,
    "mobo_name": "ROMED8-2T",
    "ubuntu_version": "22.04",
    "static_ip": False,
    "external": False,
    "rentable": True,
    "rented": False,
    "vms_enabled": False,
    "gpu_display_active": False,
    "bw_nvlink": 0.0,
    "gpu_max_power": 450.0,
    "gpu_max_temp": 83.0,
    "hosting_type": 0,
    "public_ipaddr": "127.0.0.1",
    "duration": 30 * 86400.0,
    "is_bid": False,
}

# Integers on the live API (vast-api.md section 15): a float here crashes clients that do integer arithmetic.
INTEGER_FIELDS = (
    "gpu_ram",
    "gpu_total_ram",
    "cpu_ram",
    "cpu_cores",
    "num_gpus",
    "direct_port_count",
    "machine_id",
    "host_id",
    "bundle_id",
    "ask_contract_id",
    "compute_cap",
    "has_avx",
    "hosting_type",
)
# hosting_type: 0 community, 1 datacenter (secure cloud); the SDK derives datacenter = hosting_type == 1.
HOSTING_TYPES = (0, 1)

_VERIFICATIONS = ("verified", "unverified", "deverified")


def driver_number(version: str) -> int | None:
    """``"535.86.05"`` -> 535086005, the integer form the CLI sends for ``driver_version`` filters."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int("".join(p.zfill(3) for p in parts))


def gpu_model(gpu_name: str, gpu_ram_mb: float | None = None) -> GpuModel:
    """The model behind a Vast ``gpu_name``; unknown names get a plausible ``NVIDIA <name>``."""
    known = GPU_MODELS.get(gpu_name)
    if known is not None:
        return known
    memory = int(gpu_ram_mb) if gpu_ram_mb else 16384
    return GpuModel(f"NVIDIA {gpu_name}", memory, 800, 20.0, 20.0, 900.0)


def nvidia_facts(offer: Mapping[str, Any]) -> tuple[str, str, int, int]:
    """``(nvidia-smi name, driver version, memory MiB, GPU count)`` for an offer's machine."""
    model = gpu_model(str(offer["gpu_name"]), offer.get("gpu_ram"))
    return (
        model.nvidia_name,
        str(offer.get("driver_version") or "570.86.15"),
        model.memory_mib,
        int(offer.get("num_gpus") or 1),
    )


def load_market(source: str | Path | Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Offers from ``source`` (a JSON path, a list of offers, or ``None`` for the bundled market), validated."""
    if source is None:
        text = (
            resources.files("pytest_dumont.emulator")
            .joinpath("data")
            .joinpath(DEFAULT_MARKET)
            .read_text(encoding="utf-8")
        )
        return _complete_all(_parse(text, DEFAULT_MARKET), DEFAULT_MARKET)
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MarketError(f"cannot read market file {path}: {exc.strerror or exc}") from None
        return _complete_all(_parse(text, str(path)), str(path))
    return _complete_all(list(source), "market list")


def _parse(text: str, where: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MarketError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if isinstance(data, dict):
        data = data.get("offers")
    if not isinstance(data, list):
        raise MarketError(f'{where}: expected a list of offers or {{"offers": [...]}}')
    return data


def _complete_all(raw: list[Any], where: str) -> list[dict[str, Any]]:
    if not raw:
        raise MarketError(f"{where}: the market has no offers")
    offers = [_complete(entry, f"{where}: offer #{index}") for index, entry in enumerate(raw)]
    seen: set[int] = set()
    for offer in offers:
        if offer["id"] in seen:
            raise MarketError(f"{where}: offer id {offer['id']} appears twice")
        seen.add(offer["id"])
    return offers


def _complete(entry: Any, where: str) -> dict[str, Any]:
    """Validate one offer and fill every field a client may read."""
    if not isinstance(entry, Mapping):
        raise MarketError(f"{where}: expected an object, got {type(entry).__name__}")
    if "id" in entry:
        where = f"{where} (id {entry['id']})"
    for name, types in REQUIRED.items():
        value = entry.get(name)
        if value is None:
            raise MarketError(f"{where}: missing required field {name!r}")
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise MarketError(f"{where}: {name} must be {wanted}, got {value!r}")
    _check_range(entry, where)
    offer: dict[str, Any] = dict(_DEFAULTS)
    offer.update(entry)
    offer.pop("comment", None)
    if offer["hosting_type"] not in HOSTING_TYPES:
        raise MarketError(f"{where}: hosting_type must be 0 (community) or 1 (datacenter)")
    if offer["verification"] not in _VERIFICATIONS:
        raise MarketError(f"{where}: verification must be one of {', '.join(_VERIFICATIONS)}")
    _derive(offer)
    return offer


def _check_range(entry: Mapping[str, Any], where: str) -> None:
    if entry["id"] <= 0:
        raise MarketError(f"{where}: id must be a positive integer")
    if entry["num_gpus"] < 1:
        raise MarketError(f"{where}: num_gpus must be >= 1")
    if not 0 <= entry["reliability"] <= 1:
        raise MarketError(f"{where}: reliability must be between 0 and 1, got {entry['reliability']!r}")
    for name in ("dph_base", "storage_cost"):
        if entry[name] < 0:
            raise MarketError(f"{where}: {name} must be >= 0, got {entry[name]!r}")
    if entry["disk_space"] <= 0:
        raise MarketError(f"{where}: disk_space must be > 0, got {entry['disk_space']!r}")
    driver = entry.get("driver_version")
    if driver is not None and (not isinstance(driver, str) or driver_number(driver) is None):
        raise MarketError(f'{where}: driver_version must look like "550.54.14", got {driver!r}')


def _derive(offer: dict[str, Any]) -> None:
    """Fields that follow from the others, unless the file gave them."""
    model = gpu_model(offer["gpu_name"], offer.get("gpu_ram"))
    count = offer["num_gpus"]
    offer_id = offer["id"]
    now = time.time()
    derived: dict[str, Any] = {
        "ask_contract_id": offer_id,
        "bundle_id": offer_id + 1_000_000_000,
        "machine_id": 10_000 + offer_id % 90_000,
        "host_id": 100_000 + offer_id % 900_000,
        "gpu_ram": model.memory_mib,
        "gpu_arch": "nvidia",
        "gpu_frac": 1.0,
        "compute_cap": model.compute_cap,
        "gpu_mem_bw": model.mem_bw,
        "total_flops": round(model.tflops * count, 2),
        "dlperf": round(model.dlperf * count, 2),
        "reliability2": offer["reliability"],
        "driver_vers": driver_number(offer["driver_version"]),
        "min_bid": round(offer["dph_base"] * 0.55, 4),
        "credit_discount_max": 0.4,
        "start_date": now,
        "os_version": offer.get("ubuntu_version", "22.04"),
    }
    for name, value in derived.items():
        offer.setdefault(name, value)
    offer.setdefault("gpu_total_ram", offer["gpu_ram"] * count)
    for name in INTEGER_FIELDS:  # Vast sends these as integers; the SDK's chunked search does bitwise & on gpu_ram
        if isinstance(offer.get(name), float):
            offer[name] = round(offer[name])
    offer.setdefault("end_date", offer["start_date"] + offer["duration"])
    offer.setdefault("internet_up_cost_per_tb", round(offer["inet_up_cost"] * 1024, 4))
    offer.setdefault("internet_down_cost_per_tb", round(offer["inet_down_cost"] * 1024, 4))
    offer.setdefault("verified", offer["verification"] == "verified")
    # Vast's ranking score: deep-learning performance per dollar, discounted by reliability.
    per_dollar = offer["dlperf"] / max(offer["dph_base"], 0.01)
    offer.setdefault("score", round(per_dollar * offer["reliability"] ** 4, 3))
