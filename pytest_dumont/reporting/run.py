"""The reporting side of one pytest session: outcomes, workers' instances, hook errors, and the final document.

Created on first need (a GPU test's report, a worker's output), so a run without GPU tests never builds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.reporting import RUN_KEY, document
from pytest_dumont.reporting.notify import HookCaller
from pytest_dumont.session.state import SESSION_KEY, SessionState


@dataclass
class ReportingRun:
    config: pytest.Config
    hooks: HookCaller
    state: SessionState  # the session's (looked up once: each GPU test's end needs its clock)
    outcomes: dict[str, str] = field(default_factory=dict)
    worker_instances: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # nodeid -> its scenario figures
    crashed_workers: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # report paths written, or why not
    doc: dict[str, Any] | None = None
    html: bool = False  # pytest-html writes a report: tests with phases or figures get an extra

    def local_records(self) -> list[InstanceRecord]:
        return self.state.ledger.records()

    def now(self) -> float:
        return self.state.clock.now()

    def build(self) -> dict[str, Any]:
        """The session's document: this process's instances plus those the xdist workers sent."""
        now = self.now()
        records = self.local_records()
        local = {r.instance_id: document.instance_entry(r, now) for r in records}
        self.hooks.catch_up(records, now, local)
        state = self.state
        settings = state.settings
        session = {
            "id": state.session_id,
            "mode": settings.mode,
            "image": settings.image,
            "job": os.environ.get("GITHUB_JOB"),
            "workers_crashed": list(self.crashed_workers),
        }
        instances = list(local.values()) + self.worker_instances
        self.doc = document.build(
            instances,
            self.outcomes,
            session=session,
            hook_errors=self.hooks.errors,
            figures=self.figures,
            prices=document.reference_prices(settings.reference_prices),
            runs_per_day=settings.runs_per_day,
        )
        return self.doc


def get_run(config: pytest.Config) -> ReportingRun:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        html = bool(getattr(config.option, "htmlpath", None))
        run = config.stash[RUN_KEY] = ReportingRun(config, HookCaller(config), config.stash[SESSION_KEY], html=html)
    return run


def json_path(config: pytest.Config) -> Path | None:
    """Where ``--dumont-json`` (or its ini twin, or ``$DUMONT_JSON``) asks for the JSON report, as resolved once."""
    raw = config.stash[SESSION_KEY].settings.json_path
    return Path(raw).expanduser() if raw else None
