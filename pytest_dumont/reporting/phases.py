"""The phase rows every renderer shows, with the kind that colours a bar, and the numbers' formats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.reporting.document import record_from_entry
from pytest_dumont.reporting.terminal import PHASE_LABELS, phase_rows, usd

__all__ = ["figure_value", "indent_of", "instance_rows", "record_rows", "usd"]


def figure_value(value: float | None) -> str:
    """A scenario figure as the terminal block prints it (3 decimals), with enough digits for a small one."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def indent_of(name: str) -> int:
    """A figure named with leading spaces is a part of the one above it (``"  restore"`` under ``"failover"``)."""
    return (len(name) - len(name.lstrip(" "))) // 2


def record_rows(record: InstanceRecord) -> list[tuple[str, float, str, str]]:
    """(label, seconds, outcome, kind) as the terminal table lists them."""
    provisioning = set(PHASE_LABELS.values())
    return [
        (
            label,
            seconds,
            outcome,
            "provision" if label in provisioning else "other" if label == "tests (other)" else "user",
        )
        for label, seconds, outcome in phase_rows(record)
    ]


def instance_rows(entry: Mapping[str, Any]) -> list[tuple[str, float, str, str]]:
    # The rows need no holds, and a long run has one per test: the record is rebuilt without them.
    return record_rows(record_from_entry({**entry, "holds": []}))
