"""The Vast.ai client against the emulator: real HTTP, every call the lifecycle makes, every error it maps."""

from __future__ import annotations

import socket

import pytest

from pytest_dumont.clock import ManualClock
from pytest_dumont.errors import (
    AuthenticationFailed,
    CreateRefused,
    InstanceNotFound,
    OfferUnavailable,
    RateLimited,
    ServerError,
    VastApiError,
    VastConnectionError,
)
from pytest_dumont.vast.client import CreateRequest, VastClient
from pytest_dumont.vast.offers import OfferFilters
from pytest_dumont.vast.retry import RetryPolicy


def client_for(emulator, clock=None, **policy) -> VastClient:
    clock = clock or ManualClock()
    return VastClient(
        emulator.url, emulator.api_key, policy=RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0.0, **policy)
    )


def request(label="dumont-test-1") -> CreateRequest:
    return CreateRequest(image="nvidia/cuda:12.1.0-base-ubuntu22.04", disk_gb=20, label=label)


@pytest.fixture
def api(make_emulator):
    emulator = make_emulator(profile="manual", ssh=False)
    return emulator, client_for(emulator)


def test_search_finds_cheapest_rtx_4090_first(api):
    _, client = api
    offers = client.search_offers(OfferFilters(max_dph=0.6).query())
    assert offers, "the default market has RTX 4090 offers under $0.60/h"
    assert all(o.gpu_name == "RTX 4090" for o in offers)
    assert [o.dph_total for o in offers] == sorted(o.dph_total for o in offers)
    assert all(o.dph_total <= 0.6 and o.reliability >= 0.9 and o.disk_space >= 20 for o in offers)


def test_create_show_null_status_then_running_then_destroy(api):
    emulator, client = api
    offer = client.search_offers(OfferFilters().query())[0]
    created = client.create_instance(offer.id, request())
    assert "instance_api_key" not in repr(created)
    shown = client.show_instance(created.id)
    assert shown is not None and shown.actual_status is None and shown.status == "unknown"
    emulator.world.advance(created.id)
    emulator.world.advance(created.id)
    shown = client.show_instance(created.id)
    assert shown is not None and shown.actual_status == "running" and shown.ssh_address() is not None
    assert shown.label == "dumont-test-1"
    client.destroy_instance(created.id)
    assert client.show_instance(created.id) is None
    with pytest.raises(InstanceNotFound) as info:
        client.destroy_instance(created.id)
    assert info.value.status == 404 and info.value.error == "no_such_instance"


def test_list_instances_reads_every_page_of_the_v1_list(make_emulator):
    market = [
        {
            "id": 1000 + i,
            "gpu_name": "RTX 4090",
            "num_gpus": 1,
            "dph_base": 0.2,
            "storage_cost": 0.1,
            "disk_space": 100,
            "reliability": 0.99,
            "verified": True,
        }
        for i in range(30)
    ]
    emulator = make_emulator(profile="manual", ssh=False, market=market)
    client = client_for(emulator)
    ids = {client.create_instance(o["id"], request(f"dumont-page-{o['id']}")).id for o in market}
    listed = list(client.list_instances())
    assert {i.id for i in listed} == ids and len(listed) == 30
    only = list(client.list_instances({"label": {"eq": "dumont-page-1007"}}))
    assert [i.label for i in only] == ["dumont-page-1007"]


def test_stop_start_and_label(api):
    _, client = api
    created = client.create_instance(client.search_offers(OfferFilters().query())[0].id, request())
    client.set_label(created.id, "renamed")
    client.set_state(created.id, "stopped")
    shown = client.show_instance(created.id)
    assert shown is not None and shown.label == "renamed" and shown.intended_status == "stopped"
    client.set_state(created.id, "running")
    assert client.show_instance(created.id).intended_status == "running"
    with pytest.raises(ValueError, match="state must be"):
        client.set_state(created.id, "paused")


def test_attach_ssh_key_refuses_private_material_before_sending(api):
    _, client = api
    created = client.create_instance(client.search_offers(OfferFilters().query())[0].id, request())
    client.attach_ssh_key(created.id, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5 t")
    with pytest.raises(ValueError, match="OpenSSH public key"):
        client.attach_ssh_key(created.id, "-----BEGIN OPENSSH PRIVATE KEY-----")


def test_offer_taken_at_create_is_offer_unavailable(make_emulator):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(profile="manual", ssh=False, faults=Faults(create_faults=["offer_taken"]))
    client = client_for(emulator)
    offer = client.search_offers(OfferFilters().query())[0]
    with pytest.raises(OfferUnavailable) as info:
        client.create_instance(offer.id, request())
    assert "no_such_ask" in str(info.value)
    assert emulator.world.live_ids() == []


def test_a_bid_refused_at_create_names_the_instance_made_anyway(api):
    emulator, client = api
    offer = next(o for o in client.search_offers(OfferFilters(bid=1.0).query()) if o.min_bid)
    underbid = CreateRequest(image="img", disk_gb=20, label="dumont-test-1", price=round(offer.min_bid / 2, 4))
    with pytest.raises(CreateRefused) as info:
        client.create_instance(offer.id, underbid)
    assert info.value.error == "bid_too_low"
    assert emulator.world.live_ids() == [info.value.contract]  # made stopped: its caller must destroy it
    assert f"instance {info.value.contract} was made anyway" in str(info.value)


def test_a_rejected_key_names_the_variable_and_never_the_value(make_emulator):
    emulator = make_emulator(profile="manual", ssh=False)
    wrong = "wrong-key-0123456789abcdef"
    client = VastClient(emulator.url, wrong)
    with pytest.raises(AuthenticationFailed) as info:
        client.search_offers(OfferFilters().query())
    assert info.value.status == 401
    assert "VAST_API_KEY" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value)


def test_current_user_never_returns_a_key(api):
    _, client = api
    user = client.current_user()
    assert "credit" in user and "api_key" not in user


def test_rate_limits_are_retried_after_retry_after(make_emulator):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(profile="manual", ssh=False, faults=Faults(rate_429=0.6, seed=7))
    clock = ManualClock()
    client = client_for(emulator, clock, attempts=30)
    for _ in range(10):
        assert client.current_user()
    assert clock.sleeps, "some 429s were answered and waited for"
    assert all(s == 1.0 for s in clock.sleeps), "Retry-After: 1 is honoured exactly"


def test_persistent_rate_limit_gives_up_as_rate_limited(make_emulator):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(profile="manual", ssh=False, faults=Faults(rate_429=1.0))
    clock = ManualClock()
    with pytest.raises(RateLimited) as info:
        client_for(emulator, clock, attempts=3).current_user()
    assert info.value.retry_after == 1.0
    assert len(clock.sleeps) == 2


def test_server_errors_are_retried_then_reported(make_emulator):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(profile="manual", ssh=False, faults=Faults(rate_5xx=1.0))
    clock = ManualClock()
    with pytest.raises(ServerError) as info:
        client_for(emulator, clock, attempts=4).current_user()
    assert info.value.status in (502, 503)
    assert len(clock.sleeps) == 3


def test_create_is_not_retried_on_a_server_error(make_emulator):
    from pytest_dumont.emulator import Faults

    emulator = make_emulator(profile="manual", ssh=False)
    client = client_for(emulator)
    offer = client.search_offers(OfferFilters().query())[0]
    emulator.world.set_faults(Faults(rate_5xx=1.0))
    with pytest.raises(ServerError):
        client.create_instance(offer.id, request())
    emulator.world.set_faults(Faults())
    assert len(emulator.world.history()) <= 1


def test_refused_connection_is_a_connection_error_without_the_key():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = ManualClock()
    client = VastClient(
        f"http://127.0.0.1:{port}",
        "secret-key-abcdef123456",
        policy=RetryPolicy(sleep=clock.sleep, clock=clock.now, attempts=3),
    )
    with pytest.raises(VastConnectionError) as info:
        client.current_user()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "secret-key-abcdef123456" not in str(info.value)
    assert len(clock.sleeps) == 2, "a refused connection never reached the server, so it is retried"


def test_bad_request_is_an_api_error_with_status_code_and_message(api):
    _, client = api
    bad = CreateRequest(image="", disk_gb=20, label="x")
    with pytest.raises(VastApiError) as info:
        client.create_instance(client.search_offers(OfferFilters().query())[0].id, bad)
    assert info.value.status == 400 and info.value.error == "invalid_args"


def _seed_with_a_5xx_run(length: int) -> int:
    """A fault seed whose first ``length`` answers are 5xx at rate 0.9, the next one not (the emulator's own draws)."""
    from pytest_dumont.emulator import Faults

    for seed in range(10_000):
        faults = Faults(rate_5xx=0.9, seed=seed)
        if all(faults.roll() is not None for _ in range(length)) and faults.roll() is None:
            return seed
    raise AssertionError("no such seed")


def test_a_destroy_tries_longer_than_other_calls(api):
    # Six 5xx in a row: more than the default policy's five attempts, within the teardown policy's eight.
    from pytest_dumont.emulator import Faults

    emulator, client = api
    created = client.create_instance(client.search_offers(OfferFilters().query())[0].id, request())
    emulator.world.set_faults(Faults(rate_5xx=0.9, seed=_seed_with_a_5xx_run(6)))
    client.destroy_instance(created.id)
    emulator.world.set_faults(Faults())
    assert client.show_instance(created.id) is None


def test_other_calls_give_up_after_the_default_attempts(api):
    from pytest_dumont.emulator import Faults

    emulator, client = api
    emulator.world.set_faults(Faults(rate_5xx=0.9, seed=_seed_with_a_5xx_run(6)))
    with pytest.raises(ServerError):
        client.current_user()
    emulator.world.set_faults(Faults())
