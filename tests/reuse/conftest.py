"""Fixtures of the reuse tests: a private state directory, no CI in the environment, and the runs they compare."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # polling.wait_for: one helper for the suite
from reuse_helpers import GPU_TEST


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
def used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[tuple[int, int]]]:
    """(instance id, files found in /workspace) for each GPU test the inner runs ran, in order."""
    out = tmp_path / "used.txt"
    monkeypatch.setenv("DUMONT_TEST_OUT", str(out))

    def read() -> list[tuple[int, int]]:
        lines = out.read_text().splitlines() if out.exists() else []
        return [(int(a), int(b)) for a, b in (line.split() for line in lines)]

    return read


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
