"""Where each cassette lives and what to tell a user who has none. No heavy import: replay's skip path uses it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from pytest_dumont.provisioning.provisioner import ProvisionRequest

PROVISIONING_DIR = "_provisioning"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]=+-]+")


def cassette_root(rootdir: Path, setting: str) -> Path:
    """The cassette directory: ``--dumont-cassette-dir`` relative to the rootdir (absolute paths stay)."""
    path = Path(setting).expanduser()
    return path if path.is_absolute() else rootdir / path


def safe_name(text: str, limit: int = 150) -> str:
    """A file name from a test name, as pytest-recording makes them: odd characters to '-', long ones hashed."""
    name = _UNSAFE.sub("-", text).strip("-") or "test"
    if len(name) > limit:
        import hashlib  # loads OpenSSL: only for the rare long name (a plain run imports this module)

        name = name[: limit - 13] + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return name


def stem_for(item: pytest.Item) -> Path:
    """``<module>/<Class.test>`` for one test, relative to the cassette directory."""
    module = Path(str(item.path)).stem
    parts = item.nodeid.split("::")[1:]
    return Path(module) / safe_name(".".join(parts))


def ssh_path(root: Path, item: pytest.Item) -> Path:
    stem = stem_for(item)
    return root / stem.parent / (stem.name + ".ssh.yaml")


def rental_path(root: Path, item: pytest.Item, number: int) -> Path:
    """The provisioning cassette of the ``number``-th instance a test rented itself (1-based)."""
    stem = stem_for(item)
    return root / stem.parent / f"{stem.name}.rental-{number}.yaml"


def http_path(root: Path, item: pytest.Item) -> Path:
    stem = stem_for(item)
    return root / stem.parent / (stem.name + ".yaml")


def request_key(request: ProvisionRequest) -> str:
    """A stable key for a provision request: each distinct request has its own provisioning cassette."""
    import dataclasses
    import hashlib
    import json

    fields = dataclasses.asdict(request)
    fields["filters"] = request.filters.key_fields()  # an on-demand request keeps its key from before bids
    data = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def provisioning_path(root: Path, request: ProvisionRequest) -> Path:
    gpu = safe_name(request.filters.gpu_names[0].lower().replace(" ", "-")) if request.filters.gpu_names else "any"
    return root / PROVISIONING_DIR / f"{gpu}-{request_key(request)}.yaml"


def record_commands(nodeid: str = "") -> str:
    """The two ways to write a test's cassettes (every GPU test's, without a node id), as a user would type them."""
    target = f" {nodeid}" if nodeid else ""
    return (
        f"`pytest --dumont-mode=emulator --dumont-record-mode=rewrite{target}` (the bundled emulator) or "
        f"`VAST_API_KEY=... pytest --dumont-mode=record{target}` (a real instance)"
    )
