"""The phase rows every renderer shows, with the kind that colours a bar, and the numbers' formats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_dumont.ledger import InstanceRecord
from pytest_dumont.reporting.document import record_from_entry
from pytest_dumont.reporting.terminal import PHASE_LABELS, phase_rows, usd

__all__ = ["instance_rows", "record_rows", "usd"]


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
    return record_rows(record_from_entry(entry))
