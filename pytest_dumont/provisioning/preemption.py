"""Interruptible instances: telling Vast.ai's stop for a higher bid from every other stop, and acting on it.

An outbid instance goes to ``intended_status: stopped`` (and may still read ``loading`` or ``exited``: vast-api.md,
statuses). The session never stops a ``vast_gpu`` instance, and the factory notes the stops it asks for, so an
interruptible instance found meant to be stopped was preempted. It is then destroyed at once: it cannot run again
below the new minimum bid, and its disk is still billed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_dumont.errors import DumontError, InstancePreempted

if TYPE_CHECKING:
    from pytest_dumont.provisioning.provisioner import Provisioner
    from pytest_dumont.provisioning.records import InstanceRecord
    from pytest_dumont.vast.models import Instance


def is_preempted(record: InstanceRecord, instance: Instance) -> bool:
    """Vast stopped it, not this session: an interruptible instance now meant to be stopped."""
    return record.bid is not None and not record.stop_asked and instance.intended_status == "stopped"


def preempted_error(record: InstanceRecord, instance: Instance, when: str) -> InstancePreempted:
    assert record.bid is not None  # only interruptible instances are preempted
    return InstancePreempted(
        record.instance_id, record.bid, when, status=instance.status, status_msg=instance.status_msg
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
