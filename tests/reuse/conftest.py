"""Fixtures of the reuse tests: a private state directory, no CI in the environment, and the runs they compare."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # polling.wait_for: one helper for the suite

GPU_TEST = """
import os

def test_gpu(ssh_session, vast_gpu):
    with open(os.environ["DUMONT_TEST_OUT"], "a") as out:
        out.write(f"{vast_gpu.id}\\n")
    ssh_session.run("touch /workspace/left-by-$$", hide=True)
"""


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ledger file, parked keys and watchdog logs under tmp_path, for this process and every pytest it starts."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("DUMONT_LEDGER", str(state / "pytest-dumont" / "ledger.json"))
    for name in ("CI", "DUMONT_REUSE", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    return state / "pytest-dumont"


@pytest.fixture
def used_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """The instance id each GPU test of the inner runs got, in order."""
    out = tmp_path / "used-ids.txt"
    monkeypatch.setenv("DUMONT_TEST_OUT", str(out))
    return lambda: [int(line) for line in out.read_text().split()] if out.exists() else []


@pytest.fixture
def emulator(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A standalone emulator: it outlives each inner pytest run, as Vast does; its key and URL in the environment."""
    started = make_emulator()
    for name, value in started.environ().items():
        monkeypatch.setenv(name, value)
    return started


@pytest.fixture
def run(pytester: pytest.Pytester, emulator: Any) -> Callable[..., pytest.RunResult]:
    """One inner pytest session against the standalone emulator, with the GPU test above (override with files)."""
    if not (pytester.path / "test_gpu.py").exists():
        pytester.makepyfile(test_gpu=GPU_TEST)

    def run_once(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", "-p", "no:cacheprovider",
            *args,
        )  # fmt: skip

    return run_once


def ledger_entries(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "ledger.json"
    return json.loads(path.read_text())["entries"] if path.exists() else []


def entry_of(state_dir: Path, instance_id: int) -> dict[str, Any]:
    (entry,) = [e for e in ledger_entries(state_dir) if e["instance_id"] == instance_id]
    return entry


def dumont(*args: str, env: dict[str, str] | None = None) -> Any:
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "pytest_dumont.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
