"""Interruptible instances: telling Vast.ai's stop for a higher bid from every other stop, and acting on it.

An outbid instance goes to ``intended_status: stopped`` (and may still read ``loading`` or ``exited``: vast-api.md,
statuses). The session never stops a ``vast_gpu`` instance, and the factory notes the stops it asks for, so an
interruptible instance found meant to be stopped was preempted. It is then destroyed at once: it cannot run again
below the new minimum bid, and its disk is still billed. One the factory stopped on purpose can be outbid while it is
stopped: Vast.ai then refuses to start it, and that refusal is the same preemption. A bid already below the minimum
at create is refused too, and Vast makes that instance stopped all the same: ``BidTooLow``, once it is destroyed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_dumont.errors import BidTooLow, CreateRefused, DumontError, InstancePreempted, VastApiError

if TYPE_CHECKING:
    from pytest_dumont.provisioning.provisioner import Provisioner
    from pytest_dumont.provisioning.records import InstanceRecord
    from pytest_dumont.vast.models import Instance, Offer


def is_preempted(record: InstanceRecord, instance: Instance) -> bool:
    """Vast stopped it, not this session: an interruptible instance now meant to be stopped."""
    return record.bid is not None and not record.stop_asked and instance.intended_status == "stopped"


def preempted_error(record: InstanceRecord, instance: Instance, when: str) -> InstancePreempted:
    assert record.bid is not None  # only interruptible instances are preempted
    return InstancePreempted(
        record.instance_id,
        record.bid,
        when,
        status=instance.status,
        status_msg=instance.status_msg,
        min_bid=instance.min_bid,
    )


def check_held(provisioner: Provisioner, record: InstanceRecord, when: str) -> InstancePreempted | None:
    """After a test held an interruptible instance: was it preempted meanwhile? If so its stop goes into the
    timeline (GPU billing stops there), it is destroyed, and the error naming it is returned (for the caller to
    raise where the user sees it). One status call; none for an on-demand or an already destroyed instance."""
    if record.bid is None or not record.live:
        return None
    try:
        instance = provisioner.client.show_instance(record.instance_id)
    except DumontError:
        return None  # cannot tell now: the next test's commands or the session's teardown will
    if instance is None or not is_preempted(record, instance):
        return None
    now = provisioner.clock.now()
    provisioner.observe(record, instance, now, now)
    error = preempted_error(record, instance, when)
    record.failure = f"InstancePreempted: {error.message}"
    provisioner.destroy(record)
    return error


def start_refused(provisioner: Provisioner, record: InstanceRecord, refusal: VastApiError) -> InstancePreempted | None:
    """A start the API refused: for an interruptible instance outbid while it was stopped (``bid_too_low``, or its
    machine's minimum bid now above the bid), the instance is destroyed (it cannot run again at its bid, and its disk
    is still billed) and the error naming it returned; None for any other refusal, which the caller raises as it is."""
    if record.bid is None:
        return None
    instance = _look(provisioner, record)
    min_bid = instance.min_bid if instance is not None else None
    if not _bid_refused(refusal, record.bid, min_bid):
        return None
    error = InstancePreempted(
        record.instance_id,
        record.bid,
        "while it was stopped",
        status=instance.status if instance is not None else "unknown",
        status_msg=instance.status_msg if instance is not None else None,
        min_bid=min_bid,
        refusal=_said(refusal),
    )
    record.failure = f"InstancePreempted: {error.message}"
    provisioner.destroy(record)
    return error


def create_refused(
    provisioner: Provisioner, record: InstanceRecord, offer: Offer, refusal: CreateRefused
) -> DumontError:
    """The error for a create Vast refused yet made an instance for (its caller destroys that instance, then raises
    it): ``BidTooLow`` for a bid below the machine's minimum, else the refusal itself."""
    instance = _look(provisioner, record)
    min_bid = instance.min_bid if instance is not None else None
    if record.bid is None or not _bid_refused(refusal, record.bid, min_bid):
        return refusal
    return BidTooLow(
        record.instance_id,
        offer.id,
        record.bid,
        min_bid,
        _said(refusal),
        status=instance.status if instance is not None else None,
        status_msg=instance.status_msg if instance is not None else None,
    )


def _look(provisioner: Provisioner, record: InstanceRecord) -> Instance | None:
    """The instance as the API shows it now, its status noted in the timeline; None when the API cannot say."""
    try:
        instance = provisioner.client.show_instance(record.instance_id)
    except DumontError:
        return None  # the refusal's own error code still tells
    if instance is not None:
        now = provisioner.clock.now()
        provisioner.observe(record, instance, now, now)
    return instance


def _bid_refused(refusal: VastApiError, bid: float, min_bid: float | None) -> bool:
    """Refused for the bid: the emulator's error code, or (Vast's own code being unknown) a minimum above the bid."""
    return refusal.error == "bid_too_low" or (min_bid is not None and min_bid > bid)


def _said(refusal: VastApiError) -> str:
    return f"{refusal.error}: {refusal.msg}" if refusal.msg else str(refusal.error or refusal.message)
