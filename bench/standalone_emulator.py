"""The benches' standalone emulator: a process of its own on loopback, so that its threads do not share the measured
process's GIL (as a real cloud runs elsewhere)."""

from __future__ import annotations

import subprocess
import sys


def start_emulator(profile: str = "fast", factor: float | None = None) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``python -m pytest_dumont.emulator`` on a free port; its URL and API key are the first lines it prints."""
    args = [sys.executable, "-m", "pytest_dumont.emulator", "--port", "0", "--quiet", "--profile", profile]
    if factor is not None:
        args += ["--time-factor", str(factor)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    key = proc.stdout.readline().split()[-1]
    return proc, url, key
