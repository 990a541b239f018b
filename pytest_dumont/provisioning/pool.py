"""The session's instances: one per distinct request, shared by the tests that ask for it, destroyed at the end.

A failed provisioning is remembered, so the next test that asks the same gets the same error at once instead of
renting again (a broken offer market must not cost once per test).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pytest_dumont.errors import DumontError, TeardownError
from pytest_dumont.provisioning.cancellation import Cancellation
from pytest_dumont.provisioning.contracts import InstanceAdopter
from pytest_dumont.provisioning.provisioner import Provisioner, ProvisionRequest, ReadyInstance


class InstancePool:
    """Hands out ready instances by request and owns their teardown."""

    def __init__(self, provisioner: Provisioner, adopter: InstanceAdopter | None = None) -> None:
        self.provisioner = provisioner
        self.adopter = adopter  # --dumont-reuse: a parked instance is adopted before anything is rented
        self._lock = threading.Lock()
        self._ready: dict[ProvisionRequest, ReadyInstance] = {}
        self._failed: dict[ProvisionRequest, DumontError] = {}
        self._more: list[tuple[ProvisionRequest, ReadyInstance]] = []  # further instances of a request (remote runs)

    def acquire(self, request: ProvisionRequest) -> ReadyInstance:
        """The instance for ``request``, provisioning it on first use."""
        with self._lock:
            if request in self._ready:
                if self._ready[request].record.live:
                    return self._ready[request]
                del self._ready[request]  # destroyed under it (max-minutes, budget): rent afresh
            if request in self._failed:
                raise self._failed[request]
            try:
                ready = self.rent(request)
            except DumontError as exc:
                self._failed[request] = exc
                raise
            self._ready[request] = ready
            return ready

    def rent(self, request: ProvisionRequest, *, cancel: Cancellation | None = None) -> ReadyInstance:
        """A parked instance adopted for ``request`` if there is one (``--dumont-reuse``), else a new rental.

        ``cancel`` stops this one call from another thread (prewarming): its waits and its next create.
        """
        if self.adopter is not None:
            adopted = self.adopter.adopt(request)
            if adopted is not None:
                return adopted
        return self.provisioner.provision(request, cancel=cancel)

    def adopt(self, request: ProvisionRequest, outcome: ReadyInstance | DumontError) -> None:
        """Take what a background thread provisioned (or why it failed) for ``request``, as if ``acquire`` had.

        Prewarming provisions outside the pool's lock, so that an interrupted session can close the pool at once.
        A second instance for the same request (``--dumont-remote-instances``) is the pool's too: ``acquire`` hands
        out the first, ``close`` destroys them all.
        """
        with self._lock:
            if isinstance(outcome, DumontError):
                self._failed.setdefault(request, outcome)
            elif self._ready.setdefault(request, outcome) is not outcome:
                self._more.append((request, outcome))

    def instances(self) -> list[ReadyInstance]:
        with self._lock:
            return [*self._ready.values(), *(instance for _, instance in self._more)]

    def evict(self, instance: ReadyInstance) -> None:
        """Destroy ``instance`` now (a test overran, the budget ran out); the next test asking alike gets a new one.

        Called from the spend meter's thread: it never takes the pool's lock, which a provisioning may hold.
        """
        self.provisioner.destroy(instance.record, instance.connection)

    def close(self, park: Callable[[ProvisionRequest, ReadyInstance], bool] | None = None) -> None:
        """Destroy every instance of the session, then anything else the ledger still holds as live.

        ``park`` (``--dumont-reuse``, passed only when the session ends cleanly) is offered each instance still live
        first; what it parks (it returns True) is left running for the next session, everything else is destroyed.
        """
        errors: list[TeardownError] = []
        with self._lock:
            ready, self._ready, self._more = [*self._ready.items(), *self._more], {}, []
        for request, instance in ready:
            if instance.id in self.provisioner.kept:
                continue
            if park is not None and instance.record.live and park(request, instance):
                continue
            try:
                self.provisioner.destroy(instance.record, instance.connection)
            except TeardownError as exc:
                errors.append(exc)
        for record in self.provisioner.ledger.live():
            if record.instance_id in self.provisioner.kept:
                continue
            try:
                self.provisioner.destroy(record)
            except TeardownError as exc:
                errors.append(exc)
        try:
            self.provisioner.sweep_session()
        except DumontError as exc:
            errors.append(
                TeardownError([], f"the final sweep by label {self.provisioner.label_prefix}-* failed: {exc}")
            )
        if errors:
            ids = list(dict.fromkeys(i for e in errors for i in e.instance_ids))
            raise TeardownError(ids, "; ".join(dict.fromkeys(e.cause for e in errors)))
