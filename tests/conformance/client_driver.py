"""Run a driver script under a third-party client's interpreter, pointed at an emulator, and read its answers.

The driver process is started once and kept: importing SkyPilot or dstack takes seconds, and the client keeps its
in-process state between steps as it would in a real run. Each step is one JSON line in, one marked JSON line out.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

DRIVERS = Path(__file__).parent / "drivers"
MARK = "@@dumont@@ "  # answers carry it: a client may print its own logs on stdout
STEP_TIMEOUT_S = 300.0


class Driver:
    """``driver(step, *args)`` sends one step to ``drivers/<script> --serve`` running on the client's Python, with a
    throwaway HOME and the emulator's ``VAST_URL``/``VAST_API_KEY``; returns ``{"ok": ..., "result"|"error": ...}``."""

    def __init__(self, python: Path, script: str, emulator: Any, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "VASTAI_NO_UPDATE_CHECK": "1",
            **emulator.environ(),
        }
        self.name = script
        self._log = open(home / f"{script}.log", "w")  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen(
            [str(python), str(DRIVERS / script), "--serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        assert self._process.stdout is not None
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            if line.startswith(MARK):
                self._answers.put(line[len(MARK) :])
        self._answers.put(None)

    def __call__(self, *args: str) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(args) + "\n")
        self._process.stdin.flush()
        line = self._answers.get(timeout=STEP_TIMEOUT_S)
        assert line is not None, f"{self.name} exited (rc {self._process.poll()}); see {self._log.name}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()

    @staticmethod
    def result(answer: dict[str, Any]) -> Any:
        """The step's result; fails the test with the client's own traceback when the step failed."""
        assert answer["ok"], f"{answer['error']}\n{answer.get('traceback', '')}"
        return answer["result"]


@contextmanager
def driven(client: str, script: str, home: Path) -> Iterator[tuple[Any, Driver]]:
    """A fresh emulator and ``client``'s driver process (``drivers/<script>``) against it; both stopped at the end."""
    from client_venvs import client_python

    from pytest_dumont.emulator import Emulator

    python = client_python(client)
    emulator = Emulator(profile="fast").start()
    driver = Driver(python, script, emulator, home)
    try:
        yield emulator, driver
    finally:
        driver.close()
        emulator.stop()
