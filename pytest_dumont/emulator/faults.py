"""Faults injected on purpose: random 429/5xx answers, a bad-key status, and a queue of per-create faults."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CREATE_FAULTS = ("offer_taken", "never_boots", "exits", "oci_error", "offline", "ssh_never_up", "lost_answer")
# Only an interruptible create feels these (an on-demand one consumes them unchanged); kept apart from CREATE_FAULTS,
# which the reliability campaigns draw from, so that their seeds keep drawing what they drew.
BID_FAULTS = ("outbid",)
AUTH_STATUSES = (401, 403, 404)


@dataclass
class Faults:
    """What goes wrong, on purpose: random 429/5xx answers, a bad-key status, and one fault per create."""

    rate_429: float = 0.0  # probability that an API call answers 429
    rate_5xx: float = 0.0  # probability that an API call answers 502 or 503
    retry_after: float = 1.0  # Retry-After seconds sent with every 429 (0 allowed)
    auth_status: int = 401  # status for a bad key: Vast has been seen answering 401, 403 and 404
    create_faults: list[str] = field(default_factory=list)  # consumed one per create, in order
    seed: int = 0  # seeds the random 429/5xx draws
    destroy_delay: float = 0.0  # seconds a DELETE of an instance takes before it acts (a slow destroy)

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_5xx"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
        if self.rate_429 + self.rate_5xx > 1:
            raise ValueError("rate_429 + rate_5xx must not exceed 1")
        retry = self.retry_after
        if isinstance(retry, bool) or not isinstance(retry, (int, float)) or retry < 0:
            raise ValueError(f"retry_after must be a number of seconds >= 0, got {retry!r}")
        delay = self.destroy_delay
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"destroy_delay must be a number of seconds >= 0, got {delay!r}")
        if self.auth_status not in AUTH_STATUSES:
            raise ValueError(f"auth_status must be one of {AUTH_STATUSES}, got {self.auth_status!r}")
        if not isinstance(self.create_faults, list):
            raise ValueError("create_faults must be a list")
        for fault in self.create_faults:
            if fault not in (*CREATE_FAULTS, *BID_FAULTS):
                known = ", ".join((*CREATE_FAULTS, *BID_FAULTS))
                raise ValueError(f"unknown create fault {fault!r}; choose from {known}")
        self.create_faults = list(self.create_faults)
        self._random = random.Random(self.seed)  # noqa: S311 - fault injection, not cryptography

    def roll(self) -> int | None:
        draw = self._random.random()
        if draw < self.rate_429:
            return 429
        if draw < self.rate_429 + self.rate_5xx:
            return self._random.choice((502, 503))
        return None

    def next_create_fault(self) -> str | None:
        return self.create_faults.pop(0) if self.create_faults else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate_429": self.rate_429,
            "rate_5xx": self.rate_5xx,
            "retry_after": self.retry_after,
            "auth_status": self.auth_status,
            "create_faults": list(self.create_faults),
            "seed": self.seed,
            "destroy_delay": self.destroy_delay,
        }

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` applied (the JSON of ``POST /_emulator/faults``); bad values raise ValueError."""
        unknown = set(changes) - set(self.to_dict())
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        merged = {**self.to_dict(), **changes}
        try:
            return Faults(**merged)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
