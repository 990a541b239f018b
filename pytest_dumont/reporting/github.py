"""GitHub Actions: the Markdown summary appended to $GITHUB_STEP_SUMMARY, and ``::warning::`` annotations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_dumont.reporting import markdown
from pytest_dumont.reporting.jsonreport import ReportError
from pytest_dumont.reporting.phases import usd


def _escape(text: str) -> str:
    """Workflow-command data escaping (%, CR, LF), as actions/toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def warning_lines(doc: Mapping[str, Any], budget_usd: float | None = None, budget_hit: str | None = None) -> list[str]:
    """One ``::warning::`` per leaked instance, and one when the session reached or went over its budget."""
    lines = []
    for entry in doc["instances"]:
        if not entry["destroyed"] and not entry.get("parked_until"):  # parked (--dumont-reuse) is not a leak
            lines.append(
                "::warning title=pytest-dumont leak::"
                + _escape(
                    f"instance {entry['instance_id']} (label {entry['label']}) is not confirmed destroyed: "
                    "check the Vast.ai console, it is still billing"
                )
            )
    billed = doc["totals"]["billed_usd"]
    if budget_hit:
        lines.append(
            "::warning title=pytest-dumont budget::" + _escape(f"instances destroyed at the budget: {budget_hit}")
        )
    elif budget_usd is not None and billed > budget_usd:
        lines.append(
            "::warning title=pytest-dumont budget::"
            + _escape(f"the session cost {usd(billed)} (billed estimate), over its budget of {usd(budget_usd)}")
        )
    return lines


def append_step_summary(doc: Mapping[str, Any], path: Path) -> None:
    """Append (never overwrite: other steps write there too) the run's Markdown summary."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(markdown.render(doc) + "\n")
    except OSError as exc:
        raise ReportError(f"cannot append to GITHUB_STEP_SUMMARY {path}: {exc.strerror or exc}") from None
