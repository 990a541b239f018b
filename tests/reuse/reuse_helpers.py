"""Helpers of the reuse tests: the inner runs' GPU test, the ledger file, the watchdog's log, the dumont command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GPU_TEST = """
import os

def test_gpu(ssh_session, vast_gpu):
    files = int(ssh_session.run("ls -A /workspace | wc -l", hide=True).stdout)
    with open(os.environ["DUMONT_TEST_OUT"], "a") as out:
        out.write(f"{vast_gpu.id} {files}\\n")
    ssh_session.run("touch /workspace/left-by-$$", hide=True)
"""


def session_id(result: pytest.RunResult) -> str:
    (line,) = [line for line in result.outlines if line.startswith("dumont: mode")]
    return line.rsplit("session ", 1)[1].strip()


def watchdog_done(state_dir: Path, result: pytest.RunResult) -> bool:
    """Whether the run's watchdog has finished its teardown (its log's last line), so what it left is final."""
    log = state_dir / f"watchdog-{session_id(result)}.log"
    return log.exists() and " done in " in log.read_text()


def ledger_entries(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "ledger.json"
    return json.loads(path.read_text())["entries"] if path.exists() else []


def entry_of(state_dir: Path, instance_id: int) -> dict[str, Any]:
    (entry,) = [e for e in ledger_entries(state_dir) if e["instance_id"] == instance_id]
    return entry


def dumont(*args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "pytest_dumont.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def park_one(
    run: Callable[..., pytest.RunResult], used: Callable[[], list[tuple[int, int]]], state_dir: Path
) -> tuple[int, dict[str, Any]]:
    """A first run parks its instance: its id and ledger entry."""
    run("--dumont-reuse=5").assert_outcomes(passed=1)
    ((instance_id, _),) = used()
    return instance_id, entry_of(state_dir, instance_id)


def edit_entry(state_dir: Path, instance_id: int, change: Callable[[dict[str, Any]], object]) -> None:
    """Change an entry of the ledger file as another process (or a hand) would, without its lock."""
    path = state_dir / "ledger.json"
    data = json.loads(path.read_text())
    for entry in data["entries"]:
        if entry["instance_id"] == instance_id:
            change(entry)
    path.write_text(json.dumps(data))
