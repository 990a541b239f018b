"""Fixtures the scenarios share: the snapshot store and the figures each scenario reports (terminal, reports, junit
XML)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from pytest_dumont.reporting import FIGURES_PROPERTY
from pytest_dumont.reporting.phases import figure_value
from pytest_dumont.scenarios.snapshot import SnapshotStore, store_from_environment

# The user_properties key: the reports (JSON, pytest-html, Markdown) and junit XML carry the figures, the terminal
# summary below prints them.
FIGURES = FIGURES_PROPERTY

Figures = Callable[[str, float, str], None]


STORE_ENVIRONMENT = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    """Read the store's variables once, at configure time: later, a suite's hermetic fixtures may have cleared them."""
    names = ("DUMONT_S3_", "DUMONT_SNAPSHOT_DIR")
    config.stash[STORE_ENVIRONMENT] = {k: v for k, v in os.environ.items() if k.startswith(names)}


@pytest.fixture
def dumont_snapshot_store(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> SnapshotStore:
    """A ``LocalStore`` in a temporary directory, or the S3 store the ``DUMONT_S3_*`` variables describe.

    An S3 store is checked here, before anything is rented: bad credentials cost nothing.
    """
    environment = pytestconfig.stash.get(STORE_ENVIRONMENT, {})
    store = store_from_environment(environment, tmp_path_factory.mktemp("snapshots"))
    check: Callable[[], None] | None = getattr(store, "check", None)
    if check is not None:
        check()
    return store


@pytest.fixture
def scenario_figures(request: pytest.FixtureRequest) -> Figures:
    """``scenario_figures("snapshot up", 12.3, "MB/s")``: a figure for the terminal summary, the reports (JSON,
    pytest-html, Markdown) and the junit XML."""
    figures: list[tuple[str, float, str]] = []

    def record(name: str, value: float, unit: str) -> None:
        figures.append((name, value, unit))

    request.node.user_properties.append((FIGURES, figures))  # filled in as the test runs; read at its report
    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One block per scenario that recorded figures: the figures a team would otherwise tabulate by hand."""
    lines: list[str] = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for key, figures in getattr(report, "user_properties", ()):
                if key == FIGURES and figures:
                    lines.append(report.location[0] + "::" + report.location[2])
                    lines += [f"  {name:<28} {figure_value(value):>12} {unit}" for name, value, unit in figures]
    if lines:
        terminalreporter.write_sep("-", "dumont scenarios")
        for line in lines:
            terminalreporter.write_line(line)
