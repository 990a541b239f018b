"""The state one pytest session keeps, stored in ``config.stash`` (never on ``config._something``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from pytest_dumont.clock import Clock, SystemClock
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.session.settings import Settings


def new_session_id() -> str:
    """A short id for instance labels; unique enough to tell this run's instances from any other's."""
    return uuid.uuid4().hex[:10]


@dataclass
class SessionState:
    settings: Settings
    session_id: str = field(default_factory=new_session_id)
    clock: Clock = field(default_factory=SystemClock)
    ledger: Ledger = field(default_factory=Ledger)
    teardown_errors: list[str] = field(default_factory=list)


SESSION_KEY = pytest.StashKey[SessionState]()


def get_state(config: pytest.Config) -> SessionState:
    return config.stash[SESSION_KEY]
