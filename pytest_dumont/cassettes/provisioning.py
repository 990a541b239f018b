"""Session-scoped provisioning, recorded and replayed (vcrpy alone cannot: pytest-recording#76).

Each distinct provision request has its own cassette: the search, the create, every status poll in order, how long
SSH took to answer, the destroy and its confirmation. On replay the real ``Provisioner`` runs against it, so the
lifecycle's own logic is what replays, and every test sharing the instance replays without provisioning again.

An instance a test rents for itself (``dumont_instance_factory``) has a cassette of the same kind per rental, beside
the test's own (``<test>.rental-1.yaml``...), holding also every SSH operation on that instance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_dumont.cassettes.format import FORMAT, CassetteError, dump, load, write_atomic
from pytest_dumont.cassettes.http import CassetteAdapter, HttpTape
from pytest_dumont.cassettes.network import block_network
from pytest_dumont.cassettes.paths import provisioning_path, request_key
from pytest_dumont.cassettes.ssh import ReplayConnection, Transcript, TranscriptSlot, record_into
from pytest_dumont.cassettes.virtual_clock import VirtualClock
from pytest_dumont.provisioning.provisioner import Provisioner, ProvisionRequest, ReadyInstance, describe_request
from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.secrets.scrub import Scrubber
from pytest_dumont.vast.client import VastClient

if TYPE_CHECKING:
    from pytest_dumont.clock import Clock
    from pytest_dumont.provisioning.cancellation import Cancellation
    from pytest_dumont.ssh.connect import SSHTarget


@dataclass
class ProvisioningCassette:
    """One request's provisioning: its HTTP tape, SSH readiness time and the operations run outside any test."""

    path: Path
    request: ProvisionRequest
    tape: HttpTape
    ssh: Transcript
    ssh_ready_seconds: float = 0.0
    recorded_with: dict[str, Any] = field(default_factory=dict)
    saved: bool = False

    def document(self) -> dict[str, Any]:
        facts = describe_request(self.request)
        return {
            "dumont_format": FORMAT,
            "kind": "provisioning",
            "request": {"key": request_key(self.request), "filters": facts["filters"], "image": facts["image"]},
            "recorded_with": self.recorded_with,
            "ssh_ready_seconds": round(self.ssh_ready_seconds, 6),
            "ssh": self.ssh.operations,
            "interactions": self.tape.recorded,
            "version": 1,  # vcrpy's own cassette version: the interactions load with vcrpy as they are
        }


class CassetteProvisioner(Provisioner):
    """A ``Provisioner`` whose API calls and SSH readiness go to the request's cassette, recorded or replayed."""

    def __init__(
        self,
        client: VastClient,
        *,
        adapter: CassetteAdapter,
        roots: list[Path],
        scrubber: Scrubber,
        replaying: bool,
        recorded_with: dict[str, Any],
        how_to_record: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, **kwargs)
        self.adapter = adapter
        self.roots = roots  # recordings go to the first; replay looks in each, in order (the session adds)
        self.scrubber = scrubber
        self.replaying = replaying
        self.recorded_with = recorded_with
        self.how_to_record = how_to_record
        self.cassettes: dict[int, ProvisioningCassette] = {}  # instance id -> its request's cassette
        self.slots: dict[int, TranscriptSlot] = {}
        self._local = threading.local()  # what plays now, per thread: prewarming rents on a thread of its own

    @property
    def _active(self) -> ProvisioningCassette | None:
        active: ProvisioningCassette | None = getattr(self._local, "active", None)
        return active

    @property
    def _slot(self) -> TranscriptSlot | None:
        slot: TranscriptSlot | None = getattr(self._local, "slot", None)
        return slot

    def locate(self, request: ProvisionRequest) -> Path:
        """The request's cassette: the first root holding one on replay, else where a recording goes."""
        paths = [provisioning_path(root, request) for root in self.roots]
        if self.replaying:
            return next((p for p in paths if p.exists()), paths[0])
        return paths[0]

    def open(self, request: ProvisionRequest, path: Path | None = None) -> ProvisioningCassette:
        path = path or self.locate(request)
        if not self.replaying:
            return ProvisioningCassette(
                path, request, HttpTape(path, self.scrubber), Transcript(path), recorded_with=self.recorded_with
            )
        doc = load(path, "provisioning", self.how_to_record)
        recorded_key = (doc.get("request") or {}).get("key") if isinstance(doc.get("request"), dict) else None
        if recorded_key not in (None, request_key(request)):
            raise CassetteError(
                f"cassette {path} was recorded for another request (key {recorded_key}, this test asks "
                f"{request_key(request)}: {describe_request(request)['filters']}): record it again with "
                f"{self.how_to_record}"
            )
        try:
            return ProvisioningCassette(
                path,
                request,
                HttpTape(path, self.scrubber, list(doc.get("interactions") or [])),
                Transcript(path, list(doc.get("ssh") or [])),
                ssh_ready_seconds=float(doc.get("ssh_ready_seconds") or 0.0),
                recorded_with=dict(doc.get("recorded_with") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CassetteError(
                f"cassette {path} is corrupted ({type(exc).__name__}: {exc}): delete it and record it again with "
                f"{self.how_to_record}"
            ) from None

    @contextmanager
    def _playing(self, cassette: ProvisioningCassette) -> Iterator[None]:
        previous, previous_tape = self._active, self.adapter.tape
        self._local.active, self.adapter.tape = cassette, cassette.tape
        with ExitStack() as stack:
            if self.replaying:
                stack.enter_context(block_network())
            try:
                yield
            finally:
                self._local.active, self.adapter.tape = previous, previous_tape

    def provision(
        self, request: ProvisionRequest, cassette_path: Path | None = None, *, cancel: Cancellation | None = None
    ) -> ReadyInstance:
        """Rent ``request`` through its cassette (``cassette_path``: a test's rental, else the request's own)."""
        cassette = self.open(request, cassette_path)
        slot = self._local.slot = TranscriptSlot(self.clock, self.scrubber, default=cassette.ssh)
        with self._playing(cassette):
            ready = super().provision(request, cancel=cancel)
        self.cassettes[ready.id] = cassette
        self.slots[ready.id] = slot
        ready.emulated = (cassette.recorded_with or self.recorded_with).get("mode") == "emulator"
        if not self.replaying:
            cassette.ssh_ready_seconds = ready.record.phase_seconds("wait_ssh")
            record_into(ready.connection, slot)
        return ready

    def provision_unrecorded(self, request: ProvisionRequest) -> ReadyInstance:
        """Rent ``request`` live with no cassette at all (a test that records nothing in this run)."""
        return super().provision(request)

    def _connect_ssh(self, target: SSHTarget, record: InstanceRecord, clock: Clock) -> Any:
        if not self.replaying:
            return super()._connect_ssh(target, record, clock)
        assert self._active is not None and self._slot is not None  # provision() opened both
        if isinstance(self.clock, VirtualClock):
            self.clock.advance(self._active.ssh_ready_seconds)  # as long as SSH took to answer when recorded
        return ReplayConnection(target, self._slot)

    def destroy(self, record: InstanceRecord, connection: Any = None) -> None:
        cassette = self.cassettes.get(record.instance_id)
        if cassette is None or self._active is not None:  # a failed attempt inside provision(): already playing
            super().destroy(record, connection)
            return
        with self._playing(cassette):
            super().destroy(record, connection)
        if not self.replaying and not cassette.saved:
            write_atomic(cassette.path, dump(cassette.document()))
            cassette.saved = True

    def sweep_session(self) -> list[int]:
        if self.replaying:
            return []  # nothing real was rented, so nothing can be left behind
        return super().sweep_session()
