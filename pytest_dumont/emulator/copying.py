"""``copy_direct``: instance-to-instance copies, done on the emulator's side between two instances' sandboxes; and
the endpoint a copy between a local path and an instance gets (``commands/rsync``), where the client's own rsync
then connects (``sshd.RSYNC_USER``).

Paths are the instance's own (``/workspace/data``), resolved inside each sandbox as its SFTP server resolves them;
nothing may leave the sandbox. Semantics follow ``rsync -a``, which Vast runs: a source ending in ``/`` copies its
contents, otherwise the file or directory itself goes into a destination directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .errors import ApiError, invalid_args
from .hosts import InstanceHost
from .instance_ops import sandbox_of


def instance_id_of(location: Any, name: str) -> int:
    """``12345``, ``"12345"`` or ``"C.12345"`` -> 12345; volumes and cloud locations are not emulated."""
    text = str(location)
    if text.startswith("C."):
        text = text[2:]
    if isinstance(location, bool) or not text.isdigit():
        raise ApiError(400, "not_supported", f"{name} {location!r}: the emulator copies between instances only")
    return int(text)


def _inside(root: Path, path: Any, name: str) -> Path:
    if not isinstance(path, str) or not path:
        raise invalid_args(f"{name} is required")
    absolute = path if path.startswith("/") else "/root/" + path
    resolved = (root / absolute.lstrip("/")).resolve()
    if resolved != root.resolve() and not resolved.is_relative_to(root.resolve()):
        raise invalid_args(f"{name} leaves the instance: {path}")
    return resolved


def copy_direct(src: InstanceHost, src_path: Any, dst: InstanceHost, dst_path: Any) -> None:
    src_box, dst_box = sandbox_of(src), sandbox_of(dst)
    if src_box is None or dst_box is None:
        raise ApiError(400, "not_supported", "copy needs the emulator's instance sandboxes (ssh=True)")
    source = _inside(src_box.root, src_path, "src_path")
    target = _inside(dst_box.root, dst_path, "dst_path")
    if not source.exists():
        raise ApiError(400, "invalid_args", f"src_path does not exist on the source instance: {src_path}")
    contents_only = str(src_path).endswith("/")
    if source.is_dir():
        destination = target if contents_only else target / source.name
        shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        return
    if str(dst_path).endswith("/") or target.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        target = target / source.name
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target, follow_symlinks=False)
    os.utime(target)


def is_local(location: Any) -> bool:
    """``vastai copy`` names the local side ``local`` (``local:path``) or not at all (a bare path): None."""
    return location is None or location == "local"


def local_copy_endpoint(host: InstanceHost, path: Any, role: str) -> dict[str, Any]:
    """Where the client's rsync connects to copy between a local path and this instance: its SSH server, as
    ``<role>_addr`` and ``<role>_port`` (the CLI reads ``dst_*`` for an upload, ``src_*`` for a download) *(the
    address is the emulator's choice: the proxy endpoint, which every SSH runtype has)*."""
    sandbox = sandbox_of(host)
    ssh = getattr(host, "ssh", None)
    if sandbox is None or ssh is None:
        raise ApiError(400, "not_supported", "copy needs the emulator's instance sandboxes (ssh=True)")
    _inside(sandbox.root, path, f"{role}_path")
    if not ssh.is_open:
        raise ApiError(400, "not_running", "the instance is not running: start it before copying to or from it")
    return {f"{role}_addr": ssh.host, f"{role}_port": ssh.port}
