"""The fake ``nvidia-smi`` an emulated instance has on its PATH: a small /bin/sh script, fast to start.

It answers the queries GPU tests make (``--query-gpu=... --format=csv``, ``-L``, the plain table) with the facts
of the offer's GPU, and a utilization the emulator can set (idle watchers and hibernation scenarios read it).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

__all__ = ["GpuFacts", "render_nvidia_smi"]


@dataclass(frozen=True)
class GpuFacts:
    """What the fake ``nvidia-smi`` of an emulated instance reports."""

    name: str = "NVIDIA GeForce RTX 4090"
    driver_version: str = "580.95.05"
    memory_total_mib: int = 24564
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or self.memory_total_mib < 1:
            raise ValueError(f"a GPU needs count >= 1 and memory > 0, got {self}")


_CUDA_BY_DRIVER = ((580, "13.0"), (575, "12.9"), (570, "12.8"), (560, "12.6"), (550, "12.4"), (535, "12.2"))
_HEADER_UNITS = {"memory.total": "MiB", "memory.used": "MiB", "memory.free": "MiB", "utilization.gpu": "%"}
_HEADER_UNITS.update({"utilization.memory": "%", "power.draw": "W", "power.limit": "W"})


def _gpu_values(gpu: GpuFacts, utilization: int, seed: str, index: int) -> dict[str, tuple[str, str]]:
    """Each queryable field's (value, unit) for GPU ``index``."""
    used = 1
    uuid = f"GPU-{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:28]}{index:04x}"
    return {
        "index": (str(index), ""),
        "name": (gpu.name, ""),
        "driver_version": (gpu.driver_version, ""),
        "count": (str(gpu.count), ""),
        "uuid": (uuid, ""),
        "pci.bus_id": (f"00000000:{index + 1:02X}:00.0", ""),
        "memory.total": (str(gpu.memory_total_mib), " MiB"),
        "memory.used": (str(used), " MiB"),
        "memory.free": (str(gpu.memory_total_mib - used), " MiB"),
        "utilization.gpu": (str(utilization), " %"),
        "utilization.memory": (str(utilization // 2), " %"),
        "temperature.gpu": (str(30 + utilization * 2 // 5), ""),
        "power.draw": (f"{25 + utilization * 4.25:.2f}", " W"),
        "power.limit": ("450.00", " W"),
    }


_ALIASES = {"gpu_name": "name", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id"}


def _table(gpu: GpuFacts, utilization: int, seed: str) -> str:
    """The output of a bare ``nvidia-smi``, without its date line."""
    major = int(gpu.driver_version.split(".")[0]) if gpu.driver_version.split(".")[0].isdigit() else 0
    cuda = next((cuda for least, cuda in _CUDA_BY_DRIVER if major >= least), "12.0")
    rule = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"
    top = f" NVIDIA-SMI {gpu.driver_version:<23}Driver Version: {gpu.driver_version:<15}CUDA Version: {cuda}"
    lines = [
        "+" + "-" * 89 + "+",
        f"|{top:<89}|",
        rule,
        "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
        "|                                         |                        |               MIG M. |",
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|",
    ]
    for index in range(gpu.count):
        v = {field: value for field, (value, _) in _gpu_values(gpu, utilization, seed, index).items()}
        perf = "P2" if utilization else "P8"
        left = f"{30 if utilization else 0:>3}%   {v['temperature.gpu']:>2}C    {perf}"
        power = f"{round(float(v['power.draw']))}W / {round(float(v['power.limit'])):>4}W "
        lines += [
            f"|{index:>4}  {gpu.name[:29]:<29}{'On':>4}  |{v['pci.bus_id']:>19} Off |{'Off':>21} |",
            f"|{left}{power:>{41 - len(left)}}|{v['memory.used'] + 'MiB / ' + v['memory.total'].rjust(6) + 'MiB ':>24}|"
            f"{v['utilization.gpu'] + '%      Default ':>22}|",
            "|" + " " * 41 + "|" + " " * 24 + "|" + f"{'N/A':>21} |",
            rule,
        ]
    lines += [
        "",
        "+" + "-" * 89 + "+",
        "| Processes:" + " " * 78 + "|",
        "|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |",
        "|        ID   ID                                                               Usage      |",
        "|" + "=" * 89 + "|",
        "|  No running processes found" + " " * 61 + "|",
        "+" + "-" * 89 + "+",
    ]
    return "\n".join(lines) + "\n"


def render_nvidia_smi(gpu: GpuFacts, utilization: int, seed: str) -> str:
    """A POSIX sh ``nvidia-smi`` (no Python start-up) answering -L, --query-gpu=... --format=csv[...] and no args."""
    per_gpu = [_gpu_values(gpu, utilization, seed, index) for index in range(gpu.count)]
    arms = []
    for field in per_gpu[0]:
        names = "|".join([field, *(alias for alias, target in _ALIASES.items() if target == field)])
        if all(values[field] == per_gpu[0][field] for values in per_gpu):
            value, unit = per_gpu[0][field]
            arms.append(f"    {names}) v={shlex.quote(value)} u={shlex.quote(unit)} ;;")
        else:
            inner = " ".join(
                f"{i}) v={shlex.quote(values[field][0])} u={shlex.quote(values[field][1])} ;;"
                for i, values in enumerate(per_gpu)
            )
            arms.append(f"    {names}) case $2 in {inner} esac ;;")
    headers = "\n".join(f"    {field}) h='{field} [{unit}]' ;;" for field, unit in _HEADER_UNITS.items())
    return _NVIDIA_SMI_TEMPLATE.format(
        count=gpu.count,
        arms="\n".join(arms),
        headers=headers,
        table=_table(gpu, utilization, seed),
    )


_NVIDIA_SMI_TEMPLATE = """#!/bin/sh
# A fake nvidia-smi written by pytest-dumont's emulator: same output shapes as the real tool, no GPU.
usage() {{
    echo 'NVIDIA System Management Interface (emulated by pytest-dumont)'
    echo 'Usage: nvidia-smi [-L] [-i ID[,ID]] [--query-gpu=FIELD[,FIELD] --format=csv[,noheader][,nounits]]'
}}
bad() {{ printf '%s\\n' "$1" "Please run 'nvidia-smi -h' for help." >&2; exit 2; }}
value() {{  # $1 field, $2 GPU index -> v (value), u (unit)
    case $1 in
{arms}
    *) return 1 ;;
    esac
}}
header() {{  # $1 field -> h
    case $1 in
{headers}
    *) h=$1 ;;
    esac
}}
selected() {{ [ -z "$ids" ] || case ",$ids," in *",$1,"*) true ;; *) false ;; esac; }}
query= format= list= ids= table=1
while [ $# -gt 0 ]; do
    case $1 in
    --query-gpu=*) query=${{1#*=}} ;;
    --format=*) format=${{1#*=}} ;;
    --id=*) ids=${{1#*=}} ;;
    -i|--id) [ $# -gt 1 ] || bad "Option $1 needs a value."; shift; ids=$1 ;;
    -L|--list-gpus) list=1 ;;
    -h|--help) usage; exit 0 ;;
    *) bad "Invalid combination of input arguments: $1" ;;
    esac
    table=
    shift
done
i=0
if [ -n "$ids" ]; then
    oldifs=$IFS IFS=,
    for id in $ids; do
        case $id in *[!0-9]*|'') bad "Invalid GPU id: $id" ;; esac
        [ "$id" -lt {count} ] || {{ echo 'No devices were found' >&2; exit 6; }}
    done
    IFS=$oldifs
fi
if [ -n "$list" ]; then
    [ -z "$query$format" ] || bad 'Invalid combination of input arguments: -L with a query.'
    while [ "$i" -lt {count} ]; do
        if selected "$i"; then
            value name "$i"; name=$v
            value uuid "$i"
            printf 'GPU %s: %s (UUID: %s)\\n' "$i" "$name" "$v"
        fi
        i=$((i + 1))
    done
    exit 0
fi
if [ -n "$query" ]; then
    case ",$format," in
    *,csv,*) ;;
    *) bad 'Option --format=csv[,noheader][,nounits] is required with --query-gpu.' ;;
    esac
    case ",$format," in *,noheader,*) noheader=1 ;; *) noheader= ;; esac
    case ",$format," in *,nounits,*) nounits=1 ;; *) nounits= ;; esac
    set -f
    fields=
    oldifs=$IFS IFS=,
    for f in $query; do
        f=${{f#"${{f%%[! ]*}}"}} f=${{f%"${{f##*[! ]}}"}}
        value "$f" 0 || {{ printf 'Field "%s" is not a valid field to query.\\n\\n' "$f" >&2; exit 2; }}
        fields="$fields $f"
    done
    IFS=$oldifs
    if [ -z "$noheader" ]; then
        line= sep=
        for f in $fields; do header "$f"; line="$line$sep$h" sep=', '; done
        printf '%s\\n' "$line"
    fi
    while [ "$i" -lt {count} ]; do
        if selected "$i"; then
            line= sep=
            for f in $fields; do
                value "$f" "$i"
                [ -z "$nounits" ] || u=
                line="$line$sep$v$u" sep=', '
            done
            printf '%s\\n' "$line"
        fi
        i=$((i + 1))
    done
    exit 0
fi
[ -z "$format" ] || bad 'Invalid combination of input arguments: --format without --query-gpu.'
[ -n "$table" ] || [ -n "$ids" ] || bad 'Invalid combination of input arguments.'
date '+%a %b %e %H:%M:%S %Y'
cat <<'EOF_TABLE'
{table}EOF_TABLE
"""
