"""Fresh instances a test rents for itself (failover needs two at once), behind the ``dumont_instance_factory`` fixture.

``vast_gpu`` shares one instance per distinct request; a factory instance is never shared. Each one is provisioned by
the session's ``Provisioner``, so it is in the session's ledger (the report shows it, the pool's close and every
backstop destroy it), and the factory destroys its own instances when the test ends. When the run records or replays
cassettes, each rental goes through a cassette of its own (``cassettes.session.CassetteSession.rentals``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from pytest_dumont.errors import InstancePreempted, TeardownError, VastApiError
from pytest_dumont.provisioning.records import Hold

if TYPE_CHECKING:
    from pytest_dumont.clock import Clock
    from pytest_dumont.provisioning.pool import InstancePool
    from pytest_dumont.provisioning.provisioner import ProvisionRequest, ReadyInstance


class InstanceFactory:
    """Rents fresh instances for one test and destroys them at its end; each is timed and costed in the report."""

    def __init__(
        self,
        pool: InstancePool,
        request: ProvisionRequest,
        clock: Clock,
        nodeid: str,
        *,
        rent: Callable[[ProvisionRequest], ReadyInstance] | None = None,
        emulated: bool = False,
    ) -> None:
        self.pool = pool
        self.request = request
        self.clock = clock
        self.nodeid = nodeid
        self.rent = rent or pool.provisioner.provision  # a cassette's rent when the run records or replays
        self.emulated = emulated  # what the session's API is; a replayed rental says what it was recorded on
        self.instances: list[ReadyInstance] = []
        self._holds: list[Hold] = []

    def __call__(self, request: ProvisionRequest | None = None) -> ReadyInstance:
        """A new running instance with SSH up (the test's request unless ``request`` says otherwise)."""
        from pytest_dumont.provisioning.timing import gather_facts, time_commands

        asked = self.clock.now()
        ready = self.rent(request or self.request)
        ready.emulated = ready.emulated or self.emulated
        self.instances.append(ready)
        now = self.clock.now()
        self._holds.append(ready.record.hand_over(self.nodeid, now, waited=now - asked))
        gather_facts(ready.connection, ready.record)
        time_commands(ready.connection, ready.record, self.clock)
        return ready

    def phase(self, instance: ReadyInstance, name: str) -> AbstractContextManager[None]:
        """Time a step of the test into ``instance``'s phase table (``dumont_phase`` only knows ``vast_gpu``)."""
        from pytest_dumont.provisioning.timing import user_phase

        return user_phase(instance.record, name, self.clock)

    def stop(self, instance: ReadyInstance) -> None:
        """Stop (pause) ``instance``: GPU billing stops, its disk is kept, SSH closes. It is still destroyed later."""
        instance.connection.close()
        asked = self.clock.now()
        instance.record.stop_asked = True  # an interruptible instance meant to be stopped now is not preempted
        self.pool.provisioner.client.set_state(instance.id, "stopped")
        self._gpu_stopped(instance, asked, "stopped", "stop asked by the test")  # the API stops the bill on taking it

    def start(self, instance: ReadyInstance) -> None:
        """Start a stopped ``instance`` again; returns once it runs with SSH up (``instance.connection`` is new).

        An interruptible one outbid while it was stopped cannot start at its bid: ``InstancePreempted``, destroyed.
        """
        from pytest_dumont.provisioning.preemption import start_refused

        asked = self.clock.now()
        try:
            self.pool.provisioner.client.set_state(instance.id, "running")
        except VastApiError as exc:
            preempted = start_refused(self.pool.provisioner, instance.record, exc)
            if preempted is None:
                raise
            raise preempted from None
        instance.record.stop_asked = False
        self._back_up(instance, asked)

    def reboot(self, instance: ReadyInstance) -> None:
        """Reboot a running ``instance``: SSH drops, the GPU is not billed until it runs again; returns once it does."""
        instance.connection.close()
        asked = self.clock.now()
        self.pool.provisioner.client.reboot_instance(instance.id)
        # The GPU's bill pauses once the container is down, which the API's answer follows: its time, not the ask's.
        self._gpu_stopped(instance, self.clock.now(), "rebooting", "reboot asked by the test")
        self._back_up(instance, asked)

    def _gpu_stopped(self, instance: ReadyInstance, at: float, status: str, why: str) -> None:
        """Note when the GPU part of the bill stopped, and the status change this caused, into the timeline (no
        poll: a recorded run replays the API calls it made, no more)."""
        from pytest_dumont.vast.models import StatusChange

        record = instance.record
        record.gpu_stopped(at)
        record.note_status(StatusChange(at=at - record.created_at, status=status, status_msg=why))

    def _back_up(self, instance: ReadyInstance, asked: float) -> None:
        """Wait for ``running`` (billing opens a new span there), then reconnect SSH and time its commands again."""
        from pytest_dumont.provisioning.timing import time_commands
        from pytest_dumont.ssh.connect import SSHTarget

        provisioner = self.pool.provisioner
        seen = provisioner.wait_running_again(instance.record, asked)
        address = seen.ssh_address()
        assert address is not None  # wait_running_again returns only once an address is known
        instance.target = SSHTarget(host=address[0], port=address[1])
        instance.record.ssh_address = address
        instance.connection = time_commands(
            provisioner.reconnect(instance.record, instance.target), instance.record, self.clock
        )

    def destroy(self, instance: ReadyInstance) -> None:
        """Destroy ``instance`` now and confirm it is gone (idempotent)."""
        self.pool.provisioner.destroy(instance.record, instance.connection)

    def preempted(self) -> InstancePreempted | None:
        """The first of this test's interruptible instances that Vast.ai stopped for a higher bid, now destroyed."""
        from pytest_dumont.provisioning.preemption import check_held

        for instance in self.instances:
            error = check_held(self.pool.provisioner, instance.record, f"while {self.nodeid} held it")
            if error is not None:
                return error
        return None

    def close(self) -> None:
        """Destroy every instance this factory rented; raise one TeardownError naming any that could not be, else
        ``InstancePreempted`` for one that Vast.ai took from the test."""
        now = self.clock.now()
        for hold in self._holds:
            hold.close(now)
        preempted = self.preempted()  # no API call for an on-demand instance
        errors: list[TeardownError] = []
        for instance in self.instances:
            try:
                self.destroy(instance)
            except TeardownError as exc:
                errors.append(exc)
        if errors:
            raise TeardownError([i for e in errors for i in e.instance_ids], "; ".join(e.cause for e in errors))
        if preempted is not None:
            raise preempted
