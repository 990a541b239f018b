"""Provisioning and teardown against the emulator: real HTTP, real SSH, every failure path ends in a destroy."""

from __future__ import annotations

import pytest

from pytest_dumont.clock import SystemClock
from pytest_dumont.errors import InstanceFailedToBoot, NoMatchingOffer, OffersExhausted, SSHNotReady
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.ssh.keys import SessionKey
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters

IMAGE = "nvidia/cuda:12.1.0-base-ubuntu22.04"


@pytest.fixture
def session_key(tmp_path):
    key = SessionKey.generate(tmp_path / "key", "dumont-lifecycle-test")
    yield key
    key.remove()


def provisioner_for(emulator, key, tmp_path, **kwargs) -> Provisioner:
    deadlines = kwargs.pop("deadlines", Deadlines(boot=30, ssh=30, poll_max=0.2))
    return Provisioner(
        VastClient(emulator.url, emulator.api_key),
        clock=SystemClock(),
        ledger=Ledger(),
        session_id="testsession",
        ssh_key=key,
        known_hosts=tmp_path / "known_hosts",
        deadlines=deadlines,
        **kwargs,
    )


def rtx4090() -> ProvisionRequest:
    return ProvisionRequest(filters=OfferFilters(), image=IMAGE)


def test_journey_provisions_runs_a_command_and_destroys(vast_emulator, session_key, tmp_path):
    provisioner = provisioner_for(vast_emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    try:
        assert ready.gpu_name == "RTX 4090"
        assert ready.label.startswith("dumont-testsession-")
        statuses = [change.status for change in ready.timeline]
        assert statuses[-1] == "running"
        assert statuses[0] in ("unknown", "loading"), "the first poll sees the instance before it runs"
        assert [p.name for p in ready.phases] == ["search", "create", "wait_running", "wait_ssh"]
        result = ready.connection.run("nvidia-smi --query-gpu=name --format=csv,noheader", hide=True)
        assert result.stdout.strip() == "NVIDIA GeForce RTX 4090"
    finally:
        provisioner.destroy(ready.record, ready.connection)
    assert not ready.record.live
    assert vast_emulator.world.live_ids() == []
    assert ready.record.phases[-1].name == "destroy"
    assert ready.record.billed_cost(ready.record.destroyed_at) > 0


def test_each_command_is_a_phase_of_the_test_that_ran_it_failed_when_its_result_failed(
    vast_emulator, session_key, tmp_path
):
    from invoke.exceptions import UnexpectedExit

    from pytest_dumont.provisioning.timing import time_commands, user_phase

    provisioner = provisioner_for(vast_emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    try:
        record, clock = ready.record, provisioner.clock
        hold = record.hand_over("t.py::test_a", clock.now())
        connection = time_commands(ready.connection, record, clock)
        connection.run("true", hide=True)
        with user_phase(record, "mine", clock):
            assert connection.run("exit 3", hide=True, warn=True).exited == 3
        with pytest.raises(UnexpectedExit):
            connection.run("exit 4", hide=True)
        hold.close(clock.now())
    finally:
        provisioner.destroy(ready.record, ready.connection)
    ours = [(p.name, p.kind, p.outcome, p.depth, p.test) for p in record.phases if p.kind != "provision"]
    assert ours == [
        ("$ true", "command", "passed", 0, "t.py::test_a"),
        ("$ exit 3", "command", "failed", 1, "t.py::test_a"),
        ("mine", "user", "passed", 0, "t.py::test_a"),
        ("$ exit 4", "command", "failed", 0, "t.py::test_a"),
    ]


def test_destroy_is_idempotent(vast_emulator, session_key, tmp_path):
    provisioner = provisioner_for(vast_emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    provisioner.destroy(ready.record, ready.connection)
    provisioner.destroy(ready.record)
    assert [p.name for p in ready.phases].count("destroy") == 1


def test_offer_taken_at_create_moves_to_the_next_offer(make_emulator, session_key, tmp_path):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["offer_taken"]))
    provisioner = provisioner_for(emulator, session_key, tmp_path)
    cheapest = provisioner.client.search_offers(OfferFilters().query())[0]
    ready = provisioner.provision(rtx4090())
    try:
        assert ready.offer.id != cheapest.id
        assert len(emulator.world.history()) == 1
    finally:
        provisioner.destroy(ready.record, ready.connection)


@pytest.mark.parametrize("fault", ["exits", "oci_error", "offline"])
def test_an_instance_that_will_not_boot_is_destroyed_before_the_next_is_created(
    make_emulator, session_key, tmp_path, fault
):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=[fault]))
    provisioner = provisioner_for(emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    try:
        first, second = emulator.world.history()
        assert first["destroyed"] and not second["destroyed"]
        assert first["destroyed_at"] <= second["created_at"], "never two paid instances for one request"
        assert first["offer_id"] != second["offer_id"]
        failed = provisioner.ledger.records()[0]
        assert "will not boot" in (failed.failure or "")
        # Its phases: the search and the create stamped with its id, the failed wait, the destroy that followed.
        assert [(p.name, p.outcome, p.instance_id) for p in failed.phases] == [
            ("search", "passed", failed.instance_id),
            ("create", "passed", failed.instance_id),
            ("wait_running", "failed", failed.instance_id),
            ("destroy", "passed", failed.instance_id),
        ]
    finally:
        provisioner.destroy(ready.record, ready.connection)


def test_every_offer_failing_is_offers_exhausted_and_nothing_is_left(make_emulator, session_key, tmp_path):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["exits", "exits", "exits"]))
    provisioner = provisioner_for(emulator, session_key, tmp_path, offer_attempts=3)
    with pytest.raises(OffersExhausted) as info:
        provisioner.provision(rtx4090())
    assert len(info.value.failures) == 3
    assert "every instance made was destroyed" in str(info.value)
    assert info.value.last_status == "exited"
    assert emulator.world.live_ids() == []
    assert len(emulator.world.history()) == 3


def test_boot_deadline_names_last_status_and_status_msg(make_emulator, session_key, tmp_path):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["never_boots"]))
    provisioner = provisioner_for(
        emulator, session_key, tmp_path, offer_attempts=1, deadlines=Deadlines(boot=0.5, ssh=5, poll_max=0.1)
    )
    with pytest.raises(OffersExhausted) as info:
        provisioner.provision(rtx4090())
    (failure,) = info.value.failures
    assert isinstance(failure, InstanceFailedToBoot)
    assert failure.last_status == "loading"
    assert "Waiting" in (failure.status_msg or "")
    assert "did not reach running within 0.5 s" in str(failure)
    assert emulator.world.live_ids() == []


def test_ssh_that_never_opens_is_ssh_not_ready_and_destroyed(make_emulator, session_key, tmp_path):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["ssh_never_up"]))
    provisioner = provisioner_for(
        emulator, session_key, tmp_path, offer_attempts=1, deadlines=Deadlines(boot=10, ssh=0.5, poll_max=0.1)
    )
    with pytest.raises(OffersExhausted) as info:
        provisioner.provision(rtx4090())
    assert isinstance(info.value.failures[0], SSHNotReady)
    assert emulator.world.live_ids() == []


def test_no_matching_offer_lists_the_filters_that_ruled_them_out(vast_emulator, session_key, tmp_path):
    provisioner = provisioner_for(vast_emulator, session_key, tmp_path)
    with pytest.raises(NoMatchingOffer) as info:
        provisioner.provision(ProvisionRequest(filters=OfferFilters(max_dph=0.01), image=IMAGE))
    assert "costs more than $0.01/h" in str(info.value)
    assert "cheapest is $" in str(info.value)
    with pytest.raises(NoMatchingOffer) as info:
        provisioner.provision(ProvisionRequest(filters=OfferFilters(gpu_names=("RTX 9090",)), image=IMAGE))
    assert "there is no rentable RTX 9090 offer at all" in str(info.value)
    assert "GPUs on offer now:" in str(info.value)
    assert vast_emulator.world.history() == []


def test_keyboard_interrupt_while_booting_still_destroys(vast_emulator, session_key, tmp_path):
    def interrupt(instance_id, status, at):
        raise KeyboardInterrupt

    provisioner = provisioner_for(vast_emulator, session_key, tmp_path, on_status=interrupt)
    with pytest.raises(KeyboardInterrupt):
        provisioner.provision(rtx4090())
    (row,) = vast_emulator.world.history()
    assert row["destroyed"]
    assert provisioner.ledger.live() == []


def test_billed_estimate_agrees_with_the_emulator_ledger(vast_emulator, session_key, tmp_path):
    provisioner = provisioner_for(vast_emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    provisioner.destroy(ready.record, ready.connection)
    ours = ready.record
    theirs = vast_emulator.world.ledger()
    assert theirs["instances"][0]["id"] == ours.instance_id
    # The emulator bills storage from create to destroy: we see the same span to within the API round trips.
    assert ours.storage_dph == pytest.approx(theirs["instances"][0]["storage_total_cost"], rel=1e-9)


def test_a_create_whose_answer_is_lost_is_found_by_label_and_destroyed(make_emulator, session_key, tmp_path):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(faults=Faults(create_faults=["lost_answer"]))
    provisioner = provisioner_for(emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    try:
        lost, kept = emulator.world.history()
        assert lost["destroyed"], "the machine rented behind the 502 was found by its label and destroyed"
        assert lost["label"] == "dumont-testsession-1"
        assert not kept["destroyed"] and kept["id"] == ready.id
        assert lost["destroyed_at"] <= kept["created_at"]
    finally:
        provisioner.destroy(ready.record, ready.connection)


def test_the_session_sweep_destroys_what_carries_the_session_label(make_emulator, session_key, tmp_path):
    from pytest_dumont.vast.client import CreateRequest

    emulator = make_emulator()
    provisioner = provisioner_for(emulator, session_key, tmp_path)
    ready = provisioner.provision(rtx4090())
    provisioner.destroy(ready.record, ready.connection)
    # A machine this session rented but never learned of (its create answer and label search were both lost).
    offer = provisioner.client.search_offers(OfferFilters().query())[0]
    orphan = provisioner.client.create_instance(offer.id, CreateRequest(IMAGE, 20, "dumont-testsession-99"))
    other = provisioner.client.create_instance(
        provisioner.client.search_offers(OfferFilters().query())[0].id, CreateRequest(IMAGE, 20, "someone-else")
    )
    assert provisioner.sweep_session() == [orphan.id]
    assert emulator.world.live_ids() == [other.id]


def test_gpu_types_are_tried_in_the_order_asked_not_by_price(vast_emulator, session_key, tmp_path):
    provisioner = provisioner_for(vast_emulator, session_key, tmp_path)
    filters = OfferFilters(gpu_names=("RTX 4090", "RTX 3090"), max_dph=1.0)
    cheapest = min(provisioner.client.search_offers(filters.query()), key=lambda o: o.dph_total)
    ready = provisioner.provision(ProvisionRequest(filters=filters, image=IMAGE))
    try:
        assert ready.gpu_name == "RTX 4090"
        assert cheapest.gpu_name == "RTX 3090", "the default market's cheapest offer is an RTX 3090"
        assert ready.dph_total > cheapest.dph_total, "preference beats price"
    finally:
        provisioner.destroy(ready.record, ready.connection)
    only_3090 = ProvisionRequest(filters=OfferFilters(gpu_names=("RTX 9090", "RTX 3090"), max_dph=1.0), image=IMAGE)
    ready = provisioner.provision(only_3090)
    provisioner.destroy(ready.record, ready.connection)
    assert ready.gpu_name == "RTX 3090", "the second choice is taken when the first has no offer"
