"""The lifecycle's vocabulary for everyone else: what it hands over (``ReadyInstance``) and whom it tells.

``InstanceWatcher`` (the ledger file, the watchdog), ``SpendCap`` (the budget) and ``StatusListener`` (the status
line) are attached to a ``Provisioner``; they live here so that they can be used without importing the lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pytest_dumont.provisioning.records import InstanceRecord, Ledger, PhaseTiming
from pytest_dumont.vast.models import Offer, StatusChange
from pytest_dumont.vast.offers import OfferFilters

if TYPE_CHECKING:
    import fabric

    from pytest_dumont.ssh.connect import SSHTarget


@dataclass(frozen=True)
class ProvisionRequest:
    """What to rent and run. Hashable: tests asking the same thing share one instance."""

    filters: OfferFilters
    image: str
    onstart: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(repr=False)
class ReadyInstance:
    """A running instance with SSH up: what the ``vast_gpu`` fixture hands to tests."""

    record: InstanceRecord
    target: SSHTarget
    connection: fabric.Connection
    instance_api_key: str | None = field(default=None)
    emulated: bool = False  # the bundled emulator's (also on replay of a cassette recorded there)

    @property
    def id(self) -> int:
        return self.record.instance_id

    @property
    def offer(self) -> Offer:
        return self.record.offer

    @property
    def gpu_name(self) -> str:
        return self.record.offer.gpu_name

    @property
    def dph_total(self) -> float:
        return self.record.dph_total

    @property
    def label(self) -> str:
        return self.record.label

    @property
    def ssh_host(self) -> str:
        return self.target.host

    @property
    def ssh_port(self) -> int:
        return self.target.port

    @property
    def timeline(self) -> list[StatusChange]:
        return self.record.timeline

    @property
    def phases(self) -> list[PhaseTiming]:
        return self.record.phases

    def __repr__(self) -> str:
        return f"ReadyInstance(id={self.id}, gpu={self.gpu_name!r}, ${self.dph_total:.4f}/h, ssh={self.target})"


# (instance id, status, seconds since the create), called at every status poll: the status may repeat.
StatusListener = Callable[[int, str, float], None]


class InstanceWatcher(Protocol):
    """Told of every instance before its create and at its end: the ledger file and the watchdog are watchers."""

    def expecting(self, label: str, offer: Offer) -> None:
        """Before a create; raising here stops the create, so nothing is spent."""

    def created(self, record: InstanceRecord) -> None:
        """After a create; raising here destroys the new instance."""

    def ended(self, label: str, instance_id: int | None, outcome: str, note: str = "") -> None:
        """``outcome``: destroyed, teardown_failed, kept or nothing_rented. Must not raise."""


class InstanceAdopter(Protocol):
    """Hands over an instance an earlier session parked for the same request (``safety.adoption.Adoption``)."""

    def adopt(self, request: ProvisionRequest) -> ReadyInstance | None:
        """A ready instance for ``request``, or None when there is none to adopt (then one is rented)."""


class SpendCap(Protocol):
    """Decides whether renting ``offer`` now keeps the session within its budget (``budget.Budget`` fits)."""

    def refusal(self, offer: Offer, ledger: Ledger, now: float) -> str | None: ...


class CreateAmendment(Protocol):
    """What every create carries besides the request (the dead-man switch, ``safety.deadman.DeadmanSwitch``)."""

    def onstart(self, user_onstart: str | None) -> str:
        """The onstart script sent: the amendment's part, then the user's own."""

    def env(self) -> dict[str, str]:
        """Environment variables added to the create's ``env``."""
