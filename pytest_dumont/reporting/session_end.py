"""What the end of a session writes: the JSON report, the GitHub summary and annotations, the users' cost hook.

Each output fails alone with a message naming it; none stops the others or the terminal table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.reporting import document, github, jsonreport
from pytest_dumont.reporting.run import get_run, json_path
from pytest_dumont.session.state import SESSION_KEY, get_state

WORKER_KEY = "dumont_instances"


def worker_finish(config: pytest.Config, workeroutput: dict[str, Any]) -> None:
    """On an xdist worker: send this worker's instances (as report entries) to the controller."""
    state = config.stash[SESSION_KEY]
    now = state.clock.now()
    run = get_run(config)
    run.hooks.catch_up(state.ledger.records(), now)
    workeroutput[WORKER_KEY] = [document.instance_entry(r, now) for r in state.ledger.records()]
    workeroutput["dumont_hook_errors"] = list(run.hooks.errors)
    workeroutput["dumont_outcomes"] = dict(run.outcomes)
    workeroutput["dumont_figures"] = dict(run.figures)


def node_down(config: pytest.Config, workeroutput: dict[str, Any] | None, node_id: str) -> None:
    """On the controller: take a worker's instances; a crashed worker sent none and is named in the report."""
    run = get_run(config)
    if workeroutput is None or WORKER_KEY not in workeroutput:
        if not get_state(config).settings.remote:  # a remote run's workers rent nothing: xdist names the crash
            run.crashed_workers.append(node_id)
        return
    run.worker_instances.extend(workeroutput[WORKER_KEY])
    run.hooks.errors.extend(workeroutput.get("dumont_hook_errors", []))
    run.outcomes.update(workeroutput.get("dumont_outcomes", {}))
    run.figures.update(workeroutput.get("dumont_figures", {}))


def controller_finish(config: pytest.Config) -> None:
    """Build the document once, then write every output that is asked for."""
    run = get_run(config)
    doc = run.build()
    run.hooks.call("pytest_dumont_session_cost", report=doc, config=config)
    doc["hook_errors"] = list(run.hooks.errors)
    path = json_path(config)
    if path is not None:
        try:
            jsonreport.write(path, doc)
            run.messages.append(f"dumont JSON report: {path}")
        except jsonreport.ReportError as exc:
            run.messages.append(f"dumont JSON report NOT written: {exc}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            github.append_step_summary(doc, Path(summary))
        except jsonreport.ReportError as exc:
            run.messages.append(f"dumont GitHub summary NOT written: {exc}")
    if os.environ.get("GITHUB_ACTIONS") == "true" or summary:
        from pytest_dumont.safety.budget import GUARD_KEY

        guard = config.stash.get(GUARD_KEY, None)
        budget = get_state(config).settings.budget_usd
        run.messages.extend(github.warning_lines(doc, budget, guard.budget_hit if guard is not None else None))
    _metadata(config, doc)


def _metadata(config: pytest.Config, doc: dict[str, Any]) -> None:
    """pytest-html's Environment rows come from pytest-metadata's dict, rendered after this runs."""
    try:
        from pytest_metadata.plugin import metadata_key  # type: ignore[import-untyped]
    except ImportError:
        return
    metadata = config.stash.get(metadata_key, None)
    if metadata is not None:
        from pytest_dumont.reporting.html import environment

        metadata.update(environment(doc))
