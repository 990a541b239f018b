"""Calls users' ``pytest_dumont_*`` hooks one implementation at a time: one that raises is reported, never fatal.

A hook that raises is named in the summary and the run goes on: what a report tells others never fails the tests.

Instances are announced as they are created and confirmed destroyed (``LiveEvents``, a watcher on the session's
provisioner), with the phases finished so far; the rest is caught up at each GPU test's end and at the session's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.reporting.document import instance_entry
from pytest_dumont.secrets.redact import redact

if TYPE_CHECKING:
    from pytest_dumont.vast.models import Offer

EVENTS = ("pytest_dumont_instance_created", "pytest_dumont_phase_finished", "pytest_dumont_instance_destroyed")


class HookCaller:
    """Fires each event once per instance or phase, whenever the reporting code or the provisioner next looks."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.errors: list[str] = []
        self._lock = threading.Lock()  # prewarming creates on a thread of its own
        self._phases_seen: dict[int, int] = {}
        self._created: set[int] = set()
        self._destroyed: set[int] = set()
        # Whether anyone implements an event, as of the first GPU test's end: if not, tests skip the look at the
        # ledger (the session's end still looks, for a plugin registered later).
        self.listening = any(getattr(config.hook, name).get_hookimpls() for name in EVENTS)

    def call(self, name: str, **kwargs: Any) -> None:
        hook = getattr(self.config.hook, name)
        for impl in reversed(hook.get_hookimpls()):
            arguments = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                impl.function(**arguments)
            except Exception as exc:
                where = getattr(impl.function, "__module__", impl.plugin_name)
                self.errors.append(redact(f"{name} in {where} raised {type(exc).__name__}: {exc}"))

    def catch_up(
        self, records: list[InstanceRecord], now: float, entries: dict[int, dict[str, Any]] | None = None
    ) -> None:
        """Fire what happened since the last look: instances created, phases finished, instances destroyed."""
        with self._lock:
            self._catch_up(records, now, entries)

    def _catch_up(self, records: list[InstanceRecord], now: float, entries: dict[int, dict[str, Any]] | None) -> None:
        for record in records:
            entry = (entries or {}).get(record.instance_id)
            if record.instance_id not in self._created:
                self._created.add(record.instance_id)
                entry = entry or instance_entry(record, now)
                self.call("pytest_dumont_instance_created", instance=entry, config=self.config)
            seen = self._phases_seen.get(record.instance_id, 0)
            if seen < len(record.phases):
                entry = entry or instance_entry(record, now)
                self._phases_seen[record.instance_id] = len(entry["phases"])
                for phase in entry["phases"][seen:]:
                    self.call(
                        "pytest_dumont_phase_finished", phase=phase, instance_id=record.instance_id, config=self.config
                    )
            if not record.live and record.instance_id not in self._destroyed:
                self._destroyed.add(record.instance_id)
                entry = entry or instance_entry(record, now)
                self.call("pytest_dumont_instance_destroyed", instance=entry, config=self.config)


class LiveEvents:
    """An ``InstanceWatcher`` that fires the users' hooks the moment an instance is created or confirmed destroyed,
    not at the end of the test that holds it: a webhook hears of a rental while it is paid for.

    It may be called on the prewarming thread; it never raises (a raise in ``created`` would destroy the instance).
    """

    def __init__(self, hooks: HookCaller, records: Callable[[], list[InstanceRecord]], now: Callable[[], float]):
        self.hooks, self.records, self.now = hooks, records, now

    def expecting(self, label: str, offer: Offer) -> None:
        return None

    def created(self, record: InstanceRecord) -> None:
        self._announce(record)

    def ended(self, label: str, instance_id: int | None, outcome: str, note: str = "") -> None:
        record = next((r for r in self.records() if r.instance_id == instance_id), None)
        if record is not None and outcome == "destroyed":
            self._announce(record)

    def _announce(self, record: InstanceRecord) -> None:
        if not self.hooks.listening:
            return
        try:
            self.hooks.catch_up([record], self.now())
        except Exception as exc:  # building the entry failed: the session's end tries again
            self.hooks.errors.append(redact(f"announcing instance {record.instance_id} failed: {exc!r}"))
