"""What a run shows: terminal, pytest-html, JSON, Markdown and CI summaries. Submodules are imported only when a
session has something to report; this package holds only the stash key that says whether it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_dumont.reporting.run import ReportingRun  # noqa: F401 - named in the StashKey below

RUN_KEY = pytest.StashKey["ReportingRun"]()
PROPERTY = "dumont"  # the user_properties key of a GPU test's numbers
CELLS = "dumont_cells"  # the call report's attribute with its four pytest-html cells (xdist sends it along)
# The user_properties key of a scenario's figures, [(name, value, unit), ...]: the scenarios' ``scenario_figures``
# fixture writes it, the reports read it. Here so that reporting never imports the scenarios.
FIGURES_PROPERTY = "dumont_scenario"
# Fixtures whose tests the reporting looks at when their call ends (numbers, figures, outcome).
REPORTED_FIXTURES = frozenset({"vast_gpu", "dumont_instance_factory", "scenario_figures"})
