"""Machines whose instances failed to boot, remembered across sessions so that the next run does not pay for them again.

Within a session every failed machine is skipped. With a state file (next to the ledger file,
``failed-machines.json``) a failure is also written down with when and why, for the API it happened on, and later
sessions on this machine skip it until ``--dumont-avoid-failed-hours`` have passed. Writers lock ``<file>.lock`` and
replace the file atomically. A file that cannot be read is renamed aside (never silently dropped) and named in a
warning; the session then starts with an empty memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_dumont.secrets.redact import redact
from pytest_dumont.statefile import LockTimeout, exclusive_lock, write_atomic

FILE_NAME = "failed-machines.json"
LOCK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Failure:
    """One machine's failure: where (API), when (epoch seconds) and why."""

    machine_id: int
    api_url: str
    failed_at: float
    why: str


class FailedMachines:
    """A set of machine ids to skip: this session's failures, plus earlier sessions' when a file is given."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        api_url: str = "",
        max_age_s: float = 0.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.api_url = api_url.rstrip("/")
        self.max_age_s = max_age_s
        self._now = now
        self._session: dict[int, str] = {}
        self.remembered: dict[int, Failure] = {}  # from earlier sessions, still within max_age_s
        self.problems: list[str] = []  # for the terminal summary
        if path is not None and max_age_s > 0:
            self._load()

    def __contains__(self, machine_id: object) -> bool:
        return machine_id in self._session or machine_id in self.remembered

    def __iter__(self) -> Iterator[int]:
        return iter(set(self._session) | set(self.remembered))

    def __len__(self) -> int:
        return len(set(self._session) | set(self.remembered))

    def add(self, machine_id: int, why: str = "") -> None:
        """Skip ``machine_id`` from now on; written to the file when there is one (a write failure is a problem)."""
        self._session[machine_id] = why
        if self.path is None or self.max_age_s <= 0:
            return
        failure = Failure(machine_id, self.api_url, self._now(), redact(why)[:500])
        try:
            self._update(
                lambda rows: [*(r for r in rows if r.machine_id != machine_id or r.api_url != self.api_url), failure]
            )
        except OSError as exc:
            self.problems.append(f"could not remember failed machine {machine_id} in {self.path}: {exc}")

    # --- the file -------------------------------------------------------------------------------------------------

    def _load(self) -> None:
        assert self.path is not None
        rows = self._read()
        cutoff = self._now() - self.max_age_s
        self.remembered = {r.machine_id: r for r in rows if r.api_url == self.api_url and r.failed_at >= cutoff}

    def _read(self) -> list[Failure]:
        """The rows of the file; a corrupt file is moved aside and named in ``problems``, and reads as empty."""
        assert self.path is not None
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.problems.append(f"cannot read {self.path}: {exc.strerror}; failed machines from earlier runs ignored")
            return []
        try:
            data = json.loads(text)
            return [
                Failure(int(r["machine_id"]), str(r["api_url"]), float(r["failed_at"]), str(r["why"]))
                for r in data["machines"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._now())}")
            try:
                os.replace(self.path, aside)
                kept = f"it was moved to {aside}"
            except OSError as move:
                kept = f"it could not be moved aside ({move.strerror}) and was left as it is"
            self.problems.append(
                f"the failed-machines file {self.path} is corrupt ({type(exc).__name__}: {exc}); {kept}. "
                "Machines that failed in earlier runs may be tried again"
            )
            return []

    def _update(self, change: Callable[[list[Failure]], list[Failure]]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            cutoff = self._now() - self.max_age_s
            rows = [r for r in change(self._read()) if r.failed_at >= cutoff]
            payload = json.dumps({"version": 1, "machines": [asdict(r) for r in rows]}, indent=1)
            write_atomic(self.path, payload + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        try:
            with exclusive_lock(self.path.with_name(self.path.name + ".lock"), LOCK_TIMEOUT_S):
                yield
        except LockTimeout as exc:
            raise OSError(str(exc)) from None
