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
