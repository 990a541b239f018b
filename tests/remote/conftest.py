"""Remote runs as users start them: ``pytest --dumont-remote`` in a subprocess, against an emulator of this process.

The emulated instance's commands run in a sandbox on this machine whose ``/tmp`` and ``/root`` are private, so the
runner's virtual environment may not be reachable there. The projects here therefore carry pytest, pytest-xdist and
their dependencies (pure Python, copied from this runner) in ``vendor/``, and the setup makes a venv that sees them:
the same versions as the runner, no package index needed. One test runs the default setup instead.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # polling.wait_for: one helper for the suite
import polling

EXAMPLE = Path(__file__).parents[2] / "examples" / "remote_project"
VENDORED = ("pytest", "pluggy", "iniconfig", "packaging", "execnet", "pytest-xdist", "pygments")
VENDOR_SETUP = (
    "python3 -m venv --without-pip .dumont-venv && "
    'echo "$PWD/vendor" > "$(echo .dumont-venv/lib/python3*/site-packages)/vendor.pth"'
)


@pytest.fixture(scope="session")
def vendored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This runner's pytest, pytest-xdist and their dependencies, copied once per session."""
    dest = tmp_path_factory.mktemp("vendor")
    for name in VENDORED:
        dist = metadata.distribution(name)
        for file in dist.files or ():
            source = Path(str(dist.locate_file(file)))
            if "__pycache__" in file.parts or file.parts[0] == ".." or not source.is_file():
                continue
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return dest


@pytest.fixture
def project(tmp_path: Path, vendored: Path) -> Path:
    """A copy of examples/remote_project with the vendored packages."""
    root = tmp_path / "remote_project"
    shutil.copytree(EXAMPLE, root)
    shutil.copytree(vendored, root / "vendor")
    return root


def _deliverable_sigint() -> None:
    """A suite started in the background ignores SIGINT; the inner pytest must get it as a user's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def private_state(tmp_path: Path) -> Path:
    """The ledger file and the watchdog's logs of the runs a test starts, never the user's."""
    return tmp_path / "state" / "pytest-dumont"


@pytest.fixture
def remote_pytest(make_emulator: Any, private_state: Path) -> Iterator[Callable[..., Any]]:
    """Start ``pytest --dumont-remote`` in ``cwd`` against a fresh emulator; returns (Popen, emulator).

    The emulator is at an explicit URL, as a real API is: the runs arm the ledger file and the watchdog, under
    ``private_state``.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(cwd: Path, *args: str, setup: str | None = VENDOR_SETUP, env: dict[str, str] | None = None) -> Any:
        emulator = make_emulator()
        argv = [sys.executable, "-m", "pytest", "-p", "no:randomly", "--dumont-mode=emulator", "--dumont-remote"]
        argv += [f"--dumont-api-url={emulator.url}", "--dumont-poll-max=0.2"]
        if setup is not None:
            argv += ["--dumont-remote-setup", setup]
        environ = {
            **os.environ,
            "VAST_API_KEY": emulator.api_key,
            "XDG_STATE_HOME": str(private_state.parent),
            "DUMONT_LEDGER": str(private_state / "ledger.json"),
            **(env or {}),
        }
        inner = subprocess.Popen(
            [*argv, *args],
            cwd=cwd,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_deliverable_sigint,
        )
        started.append(inner)
        return inner, emulator

    yield start
    for inner in started:
        if inner.poll() is None:
            inner.kill()
            inner.wait()


def finish(inner: subprocess.Popen[bytes], timeout: float = 240) -> str:
    return inner.communicate(timeout=timeout)[0].decode(errors="replace")


def wait_for(condition: Callable[[], Any], timeout: float = 120.0, what: str = "the condition") -> Any:
    """``polling.wait_for`` with the longer deadline a remote run's boot, sync and setup need."""
    return polling.wait_for(condition, timeout, what)


def remote_tree(emulator: Any, name: str) -> Path | None:
    """The synced tree as the live instance's sandbox holds it (a host path), once an instance exists."""
    live = emulator.world.live_ids()
    if not live:
        return None
    workspace: Path = emulator.world.host(live[0]).sandbox.workspace
    return workspace / "dumont-remote" / name
