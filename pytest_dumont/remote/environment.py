"""Prepare the instance's Python environment in the synced tree, and say which interpreter the workers run.

The default makes ``.dumont-venv`` with ``--system-site-packages`` (a CUDA image's torch stays visible, never
reinstalled), installs the project when it has a ``pyproject.toml`` or ``setup.py``, and pins pytest, pytest-xdist
and execnet to the versions this runner has: the controller and its workers speak one protocol.
``--dumont-remote-setup CMD`` replaces all of it; then ``--dumont-remote-python`` names the interpreter if it is not
``.dumont-venv/bin/python``.
"""

from __future__ import annotations

import posixpath
import shlex
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from pytest_dumont.secrets.redact import redact
from pytest_dumont.ssh.streams import LiveStream

VENV = ".dumont-venv"
DEFAULT_PYTHON = f"{VENV}/bin/python"


def pinned_requirements() -> list[str]:
    """The runner's own pytest, pytest-xdist and execnet versions, as pip requirements."""
    return [f"{name}=={version(name)}" for name in ("pytest", "pytest-xdist", "execnet")]


def default_setup_command() -> str:
    requirements = " ".join(shlex.quote(r) for r in pinned_requirements())
    return (
        "set -e; "
        f"[ -x {DEFAULT_PYTHON} ] || python3 -m venv --system-site-packages {VENV}; "
        f"{DEFAULT_PYTHON} -m pip install --disable-pip-version-check --quiet {requirements}; "
        "if [ -f pyproject.toml ] || [ -f setup.py ]; then "
        f"{DEFAULT_PYTHON} -m pip install --disable-pip-version-check --quiet -e .; fi"
    )


def remote_python(remote_dir: str, configured: str | None) -> str:
    """The workers' interpreter as an absolute path on the instance (execnet starts it before any chdir)."""
    python = configured or DEFAULT_PYTHON
    if python.startswith("/") or "/" not in python:  # absolute, or a bare name found on PATH
        return python
    return posixpath.join(remote_dir, python)


@dataclass(frozen=True)
class SetupResult:
    command: str
    exit_status: int
    output: str  # stdout and stderr together, in order, as a terminal would show them
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def run_setup(connection: Any, remote_dir: str, command: str, timeout: float) -> SetupResult:
    """Run ``command`` in the synced tree with stderr joined to stdout; never raises for a non-zero exit.

    Its own channel (not ``connection.run``): the setup is one phase of the report, not a test's command.
    """
    started = time.monotonic()
    wrapped = f"cd {shlex.quote(remote_dir)} && ( {command} ) 2>&1 </dev/null"
    with LiveStream(connection, wrapped) as stream:
        stream.channel.settimeout(timeout)
        stream.channel.shutdown_write()
        chunks: list[bytes] = []
        try:
            while chunk := stream.recv():
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(f"\n[pytest-dumont: the setup ran past {timeout:g} s and was stopped]\n".encode())
            return SetupResult(command, -1, _text(chunks), time.monotonic() - started)
        status, _ = stream.finish()
    return SetupResult(command, status, _text(chunks), time.monotonic() - started)


def _text(chunks: list[bytes]) -> str:
    """The output as shown and kept: the instance's own API key (in its environment on Vast) and others redacted."""
    return redact(b"".join(chunks).decode(errors="replace"))
