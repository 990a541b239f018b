"""Provisioning and teardown: search -> create -> running -> SSH -> hand over ... destroy, timed, never leaking.

The rule this module keeps: from the moment a create call may have rented a machine until that machine is confirmed
destroyed, every path (an API error, a failed boot, a timeout, ``KeyboardInterrupt``) goes through ``destroy``.
A failed attempt is destroyed and confirmed gone before the next offer is tried, so one request never holds two
paid instances.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_dumont.clock import Clock
from pytest_dumont.errors import (
    BidTooLow,
    BudgetExceeded,
    CreateRefused,
    DumontError,
    InstanceFailedToBoot,
    InstanceNotFound,
    InstancePreempted,
    NoMatchingOffer,
    OffersExhausted,
    OfferUnavailable,
    ProvisioningError,
    ServerError,
    TeardownError,
    VastApiError,
    VastConnectionError,
    redact,
)
from pytest_dumont.provisioning.cancellation import Cancellation
from pytest_dumont.provisioning.contracts import CreateAmendment
from pytest_dumont.provisioning.contracts import InstanceWatcher as InstanceWatcher
from pytest_dumont.provisioning.contracts import ProvisionRequest as ProvisionRequest
from pytest_dumont.provisioning.contracts import ReadyInstance as ReadyInstance
from pytest_dumont.provisioning.contracts import SpendCap as SpendCap
from pytest_dumont.provisioning.contracts import StatusListener as StatusListener
from pytest_dumont.provisioning.failed_machines import FailedMachines
from pytest_dumont.provisioning.preemption import create_refused, is_preempted, preempted_error
from pytest_dumont.provisioning.records import InstanceRecord, Ledger, PhaseTiming, TimedPhase
from pytest_dumont.vast.models import Instance, Offer, StatusChange
from pytest_dumont.vast.offers import OfferFilters, find_offers
from pytest_dumont.waiting import Backoff, WaitTimedOut, poll

if TYPE_CHECKING:
    import fabric

    from pytest_dumont.ssh.connect import SSHTarget
    from pytest_dumont.ssh.keys import SessionKey
    from pytest_dumont.vast.client import VastClient


@dataclass(frozen=True)
class Deadlines:
    """How long each wait may take, and how status polling paces itself (short at first, growing to a cap)."""

    boot: float = 900.0
    ssh: float = 180.0
    destroy_confirm: float = 120.0
    poll_first: float = 0.05
    poll_factor: float = 1.5
    poll_max: float = 2.0
    ssh_retry_max: float = 0.1  # a refused SSH connect costs no API call: retried often, SSH is seen up sooner

    @property
    def polling(self) -> Backoff:
        return Backoff(self.poll_first, self.poll_factor, self.poll_max)


def session_label_prefix(session_id: str) -> str:
    """Every instance of a session carries a label starting so; ``dumont reap`` finds leftovers by it."""
    return f"dumont-{session_id}"


class Provisioner:
    """Rents instances for one session and destroys them; records everything in the session's ``Ledger``.

    Built complete (the session builds it in ``session/resources.py``): what it is given is not changed once it rents.
    """

    def __init__(
        self,
        client: VastClient,
        *,
        clock: Clock,
        ledger: Ledger,
        session_id: str,
        ssh_key: SessionKey,
        known_hosts: Path,
        deadlines: Deadlines | None = None,
        offer_attempts: int = 3,
        on_status: StatusListener | None = None,
        watchers: list[InstanceWatcher] | None = None,
        budget: SpendCap | None = None,
        failed_machines: FailedMachines | None = None,
        deadman: CreateAmendment | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.ledger = ledger
        self.session_id = session_id
        self.ssh_key = ssh_key
        self.known_hosts = known_hosts
        self.deadlines = deadlines or Deadlines()
        self.offer_attempts = offer_attempts
        self.on_status = on_status
        # Machines that failed to boot: this session's own, unless given one that remembers across sessions.
        self.failed_machines = failed_machines if failed_machines is not None else FailedMachines()
        self.watchers: list[InstanceWatcher] = list(watchers or [])
        self.budget = budget
        self.deadman = deadman  # the dead-man switch every create carries (--dumont-deadman-ttl)
        self.kept: set[int] = set()  # --dumont-keep-on-failure: left running on purpose, never swept
        self.creates_attempted = 0
        self._labels = itertools.count(1)

    @property
    def label_prefix(self) -> str:
        """Every instance of this session carries a label starting so; ``dumont reap`` finds leftovers by it."""
        return session_label_prefix(self.session_id)

    # --- provisioning -------------------------------------------------------------------------------------------

    def provision(self, request: ProvisionRequest, *, cancel: Cancellation | None = None) -> ReadyInstance:
        """Rent the cheapest matching offer and wait until SSH answers, trying further offers when one fails.

        ``cancel`` stops this call alone (from another thread): its waits end and it refuses its next create, so
        what it rented is destroyed on the way out. Destroys wait on the provisioner's clock, never cut short.

        A bid Vast refuses at create (``BidTooLow``) moves on to the next offer, as a failed boot does: the search
        left out every offer asking more than the bid, so the refusal means that one machine's minimum rose since,
        and the next offer is another machine that was within the bid. The refused instance is destroyed and
        confirmed gone first, and ``--dumont-offer-attempts`` bounds how many are tried.
        """
        call = _Call(self.clock if cancel is None else cancel.clock(self.clock), cancel)
        search_started = self.clock.now()
        search_phase: list[PhaseTiming] = []
        with TimedPhase(search_phase, "search", self.clock):
            offers = self._search(request.filters)
        failures: list[DumontError] = []
        refusals: list[str] = []
        for offer in offers:
            if len(failures) >= self.offer_attempts:
                break
            if offer.machine_id is not None and offer.machine_id in self.failed_machines:
                continue
            refusal = self.budget.refusal(offer, self.ledger, self.clock.now()) if self.budget else None
            if refusal is not None:
                refusals.append(refusal)
                continue
            try:
                return self._provision_offer(offer, request, search_started, list(search_phase), call)
            except (ProvisioningError, OfferUnavailable, ServerError, VastConnectionError) as exc:
                # A 5xx or lost answer on create was swept by label already: the next offer is a fresh start.
                failures.append(exc)
                # An outbid machine is not broken: a higher bid took it (its min_bid now keeps it out of reach).
                if (
                    offer.machine_id is not None
                    and isinstance(exc, ProvisioningError)
                    and not isinstance(exc, (InstancePreempted, BidTooLow))
                ):
                    self.failed_machines.add(offer.machine_id, exc.message)
        if refusals and not failures:
            raise BudgetExceeded(f"no offer fits the budget; the cheapest: {refusals[0]}")
        if not failures:
            raise NoMatchingOffer(request.filters.describe(), ["every matching offer is on a machine that failed"])
        raise OffersExhausted(failures)

    def _search(self, filters: OfferFilters) -> list[Offer]:
        return find_offers(self.client, filters)

    def _provision_offer(
        self, offer: Offer, request: ProvisionRequest, search_started: float, phases: list[PhaseTiming], call: _Call
    ) -> ReadyInstance:
        label = f"{self.label_prefix}-{next(self._labels)}"
        from pytest_dumont.vast.client import CreateRequest  # requests is imported only when something is rented

        create = CreateRequest(
            image=request.image,
            disk_gb=request.filters.disk_gb,
            label=label,
            onstart=self.deadman.onstart(request.onstart) if self.deadman else request.onstart,
            env={**dict(request.env), **(self.deadman.env() if self.deadman else {})},
            price=request.filters.bid,
        )
        call.check()  # cancelled: nothing is rented, no watcher is told
        for watcher in self.watchers:
            watcher.expecting(label, offer)
        self.creates_attempted += 1
        refused: CreateRefused | None = None
        try:
            with TimedPhase(phases, "create", self.clock):
                created = self.client.create_instance(offer.id, create)
            instance_id, instance_api_key = created.id, created.instance_api_key
        except OfferUnavailable:
            self._ended(label, None, "nothing_rented")
            raise  # the API refused before renting anything
        except CreateRefused as exc:
            # Refused, yet rented: recorded like any instance (the report shows it), then destroyed below by its id.
            refused, instance_id, instance_api_key = exc, exc.contract, None
        except BaseException:
            # A 5xx, a timeout or an interrupt may come after the machine was rented: find it by label, destroy it.
            if self._sweep_label(label):
                self._ended(label, None, "nothing_rented", "swept by label after an unanswered create")
            raise
        record = InstanceRecord(
            instance_id=instance_id,
            label=label,
            offer=offer,
            disk_gb=request.filters.disk_gb,
            search_started_at=search_started,
            created_at=self.clock.now(),
            phases=[replace(p, instance_id=instance_id) for p in phases],
            bid=request.filters.bid,
        )
        self.ledger.add(record)
        try:
            for watcher in self.watchers:
                watcher.created(record)
            if refused is not None:
                raise create_refused(self, record, offer, refused)
            call.check()
            return self._bring_up(record, instance_api_key, call.clock)
        except BaseException as exc:
            record.failure = redact(f"{type(exc).__name__}: {exc}")
            self.destroy(record)
            raise

    def _bring_up(self, record: InstanceRecord, instance_api_key: str | None, clock: Clock) -> ReadyInstance:
        from pytest_dumont.ssh.connect import SSHTarget  # fabric is imported only when a GPU is used

        self.client.attach_ssh_key(record.instance_id, self.ssh_key.public_openssh)
        with TimedPhase(record.phases, "wait_running", self.clock, record.instance_id):
            instance = self._wait_running(record, clock)
        address = instance.ssh_address()
        assert address is not None  # _wait_running returns only once an address is known
        target = SSHTarget(host=address[0], port=address[1])
        record.ssh_address = address
        with TimedPhase(record.phases, "wait_ssh", self.clock, record.instance_id):
            connection = self._connect_ssh(target, record, clock)
        record.ready_at = self.clock.now()
        return ReadyInstance(record=record, target=target, connection=connection, instance_api_key=instance_api_key)

    def _connect_ssh(self, target: SSHTarget, record: InstanceRecord, clock: Clock) -> fabric.Connection:
        """Wait until SSH answers and return the connection (a replaying provisioner answers from its cassette)."""
        from pytest_dumont.ssh.connect import wait_for_ssh  # fabric is imported only when a GPU is used

        connection, _attempts = wait_for_ssh(
            target,
            self.ssh_key,
            self.known_hosts,
            clock=clock,
            deadline=clock.now() + self.deadlines.ssh,
            instance_id=record.instance_id,
            max_delay=self.deadlines.ssh_retry_max,
        )
        return connection

    def _wait_running(self, record: InstanceRecord, clock: Clock, since: float | None = None) -> Instance:
        """Poll until running with an SSH address; fail fast on exited/offline/an error status_msg.

        ``clock``: the provisioning call's own (a cancellable one while prewarming). ``since``: when the wait began
        (the create, or a start or reboot asked for later), for its deadline.
        """
        booting = "while it booted" if since is None else "while it started again"
        since = record.created_at if since is None else since
        seen: list[Instance] = []
        not_running_seen_at = since  # the last poll that saw it not running yet

        def probe() -> Instance | None:
            nonlocal not_running_seen_at
            asked = self.clock.now()
            instance = self.client.show_instance(record.instance_id)
            now = self.clock.now()
            if instance is None:
                raise InstanceFailedToBoot(
                    f"instance {record.instance_id} disappeared while booting (destroyed elsewhere?)",
                    instance_id=record.instance_id,
                    last_status=seen[-1].status if seen else None,
                )
            self.observe(record, instance, now, not_running_seen_at, answered_at=(asked + now) / 2)
            seen.append(instance)
            if instance.actual_status != "running":
                not_running_seen_at = now
            if instance.is_running and instance.ssh_address() is not None:
                return instance
            if is_preempted(record, instance):
                raise preempted_error(record, instance, booting)
            reason = instance.failure_reason()
            if reason is not None:
                raise InstanceFailedToBoot(
                    f"instance {record.instance_id} will not boot: {reason} "
                    f"(last status {instance.status}, status_msg {instance.status_msg!r})",
                    instance_id=record.instance_id,
                    last_status=instance.status,
                    status_msg=instance.status_msg,
                )
            return None

        deadline = since + self.deadlines.boot
        try:
            return poll(probe, clock=clock, deadline=deadline, backoff=self.deadlines.polling)
        except WaitTimedOut:
            last = seen[-1]
            raise InstanceFailedToBoot(
                f"instance {record.instance_id} did not reach running within {self.deadlines.boot:g} s "
                f"(last status {last.status}, status_msg {last.status_msg!r})",
                instance_id=record.instance_id,
                last_status=last.status,
                status_msg=last.status_msg,
            ) from None

    def observe(
        self,
        record: InstanceRecord,
        instance: Instance,
        now: float,
        not_running_seen_at: float,
        answered_at: float | None = None,
    ) -> None:
        """A status a poll saw: into the timeline, and into GPU billing's spans (``running`` opens one, any other
        status closes the open one: Vast bills the GPU part only while the instance runs). ``answered_at``: when
        the API wrote its answer (the middle of the request), which its uptime counts back from."""
        if self.on_status is not None:  # at every poll, so that a status line's seconds advance while it waits
            self.on_status(record.instance_id, instance.status, now - record.created_at)
        record.note_status(
            StatusChange(at=now - record.created_at, status=instance.status, status_msg=instance.status_msg)
        )
        if instance.actual_status == "running":
            record.gpu_started(
                running_since(instance, now if answered_at is None else answered_at, not_running_seen_at)
            )
        else:
            record.gpu_stopped(now)

    def wait_running_again(self, record: InstanceRecord, since: float) -> Instance:
        """After a start or a reboot asked for at ``since``: poll until it runs again with an SSH address."""
        return self._wait_running(record, self.clock, since)

    def reconnect(self, record: InstanceRecord, target: SSHTarget) -> fabric.Connection:
        """A new SSH connection once the instance runs again (a stop or a reboot closed the old one)."""
        return self._connect_ssh(target, record, self.clock)

    # --- teardown -----------------------------------------------------------------------------------------------

    def destroy(self, record: InstanceRecord, connection: fabric.Connection | None = None) -> None:
        """Destroy and confirm (the API says null). Idempotent; raises TeardownError if it cannot confirm."""
        if record.destroyed_at is not None:
            return
        if connection is not None:
            _close_quietly(connection)
        with TimedPhase(record.phases, "destroy", self.clock, record.instance_id):
            asked = self.clock.now()
            try:
                self.client.destroy_instance(record.instance_id)
            except InstanceNotFound:
                pass  # already gone: that is what we wanted
            except DumontError as exc:
                self._ended(record.label, record.instance_id, "teardown_failed", f"destroy failed: {exc}")
                raise TeardownError([record.instance_id], f"destroy failed: {exc}") from None
            if record.billing_ended_at is None:
                # Billing stops when the API takes the request, not when the instance is confirmed gone; the
                # answer may wait for the machine to be torn down, so the request's start is the closer time.
                record.billing_ended_at = asked
            try:
                self._confirm_gone(record)
            except TeardownError as exc:
                self._ended(record.label, record.instance_id, "teardown_failed", exc.cause)
                raise
        record.destroyed_at = self.clock.now()
        self._ended(record.label, record.instance_id, "destroyed")
        if record.ssh_address is not None:
            from pytest_dumont.ssh.connect import SSHTarget, forget_host_key

            # Vast may hand this host:port to the next instance, which will present another host key.
            forget_host_key(self.known_hosts, SSHTarget(*record.ssh_address))

    def _confirm_gone(self, record: InstanceRecord) -> None:
        confirm_gone(
            self.client,
            record.instance_id,
            clock=self.clock,
            within=self.deadlines.destroy_confirm,
            backoff=self.deadlines.polling,
        )

    def _sweep_label(self, label: str) -> bool:
        """Destroy whatever carries ``label``: a create that errored may still have rented a machine."""
        try:
            found = list(self.client.list_instances({"label": {"eq": label}}))
        except DumontError:
            return False  # cannot look now; the session's final sweep by label prefix tries again
        for instance in found:
            if instance.label == label:
                with suppress(InstanceNotFound, VastApiError):
                    self.client.destroy_instance(instance.id)
        return True

    def keep(self, record: InstanceRecord) -> None:
        """Leave this instance running on purpose (``--dumont-keep-on-failure``): no teardown, no sweep."""
        self.kept.add(record.instance_id)
        self._ended(record.label, record.instance_id, "kept", "kept after a failure (--dumont-keep-on-failure)")

    def _ended(self, label: str, instance_id: int | None, outcome: str, note: str = "") -> None:
        for watcher in self.watchers:
            with suppress(Exception):  # a watcher's trouble must never stop a teardown
                watcher.ended(label, instance_id, outcome, note)

    def sweep_session(self) -> list[int]:
        """Destroy every instance labelled with this session that the ledger does not hold as destroyed.

        The last backstop at session end: it catches a machine rented by a create whose answer never arrived and
        whose label search failed at the time.
        """
        if self.creates_attempted == 0:
            return []
        destroyed: list[int] = []
        known_gone = {r.instance_id for r in self.ledger.records() if not r.live} | self.kept
        for instance in self.client.list_instances():
            if instance.label and instance.label.startswith(self.label_prefix + "-") and instance.id not in known_gone:
                with suppress(InstanceNotFound):
                    self.client.destroy_instance(instance.id)
                    destroyed.append(instance.id)
                    self._ended(instance.label, instance.id, "destroyed", "swept by label at session end")
        return destroyed


@dataclass(frozen=True)
class _Call:
    """One ``provision`` call's own waits: the provisioner's clock, or a cancellable view of it."""

    clock: Clock
    cancel: Cancellation | None

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.check()


def running_since(instance: Instance, now: float, not_running_seen_at: float) -> float:
    """When GPU billing began: ``now`` less the API's uptime, never before a poll that saw it not running.

    Without it the estimate would start at the first poll that saw "running", up to one poll interval late.
    """
    if instance.uptime_seconds is None:
        return now
    return min(now, max(not_running_seen_at, now - instance.uptime_seconds))


def _close_quietly(connection: Any) -> None:
    with suppress(Exception):  # a broken connection must not stop the destroy
        connection.close()


def describe_request(request: ProvisionRequest) -> Mapping[str, Any]:
    """Public, secret-free facts about a request, for reports."""
    return {"filters": request.filters.describe(), "image": request.image}


def confirm_gone(client: VastClient, instance_id: int, *, clock: Clock, within: float, backoff: Backoff) -> None:
    """Poll until the API no longer lists ``instance_id``; TeardownError when it still does after ``within`` s.

    An API error while checking is retried until the deadline: a destroy is confirmed or reported, never assumed.
    """

    def gone() -> bool | None:
        try:
            return True if client.show_instance(instance_id) is None else None
        except InstanceNotFound:
            return True

    try:
        poll(gone, clock=clock, deadline=clock.now() + within, backoff=backoff, retry_on=(DumontError,))
    except WaitTimedOut as exc:
        if exc.last_error is not None:
            raise TeardownError([instance_id], f"could not check: {exc.last_error}") from None
        raise TeardownError([instance_id], f"the API still lists it after {within:g} s") from None
