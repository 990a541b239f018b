"""A virtual environment per third-party client, made once and cached: their dependency trees clash with ours.

Each client is installed from the package index by its ordinary installer, at a pinned version, into
``$XDG_CACHE_HOME/pytest-dumont/client-venvs/<name>-<digest>`` (the digest covers the pins and the Python version, so
a new pin makes a new environment). A lock file keeps two pytest workers from building the same one; a ``ready``
marker written last means a half-built environment is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

# The versions verified against the emulator (docs/emulator.md lists them).
CLIENTS: dict[str, tuple[str, ...]] = {
    # sky/provision/vast imports the SDK as ``vastai_sdk``: that package is now a wrapper that installs vastai 1.9.1.
    "skypilot": ("skypilot==0.14.1", "vastai-sdk==1.9.1", "vastai==1.9.1"),
    # dstack's Vast backend talks to the API with httpx; its catalog is gpuhunt's VastAIProvider.
    "dstack": ("dstack==0.22.5", "gpuhunt==0.1.34", "httpx"),
}
INSTALL_TIMEOUT_S = 1800


def _root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pytest-dumont" / "client-venvs"


def client_python(name: str) -> Path:
    """The interpreter of ``name``'s environment, built on first use (minutes; pip's cache makes rebuilds quick)."""
    pins = CLIENTS[name]
    digest = hashlib.sha256(repr((pins, sys.version_info[:2])).encode()).hexdigest()[:12]
    home = _root() / f"{name}-{digest}"
    python = home / "bin" / "python"
    ready = home / "ready"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{name}-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return python
        shutil.rmtree(home, ignore_errors=True)
        venv.EnvBuilder(with_pip=True).create(home)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        ready.write_text("\n".join(pins) + "\n")
    return python
