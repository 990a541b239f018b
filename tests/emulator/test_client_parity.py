"""What third-party Vast.ai clients rely on (vast-api.md section 15), over real HTTP: types, anonymous search,
datacenter offers, the shapes of a failed boot, bids and outbidding, and the smaller create and bulk rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from pytest_dumont.emulator import Faults
from pytest_dumont.emulator.world import OCI_ERROR_MSG

SEED_OFFER = 29292839  # the default market's cheapest verified RTX 4090
RAM_FIELDS = ("gpu_ram", "gpu_total_ram", "cpu_ram")


# -- 1: types -----------------------------------------------------------------------------------------------------


def test_ram_fields_are_integers_in_offers_and_rows(api):
    offers = api.post("/api/v0/bundles/", json={"limit": 64}).json()["offers"]
    assert offers
    for offer in offers:
        for name in (*RAM_FIELDS, "cpu_cores", "num_gpus", "direct_port_count", "hosting_type"):
            assert type(offer[name]) is int, (offer["id"], name, offer[name])
    row = api.row(api.create())
    for name in ("gpu_ram", "gpu_totalram", "cpu_ram"):
        assert type(row[name]) is int, (name, row[name])


def test_the_sdks_chunked_search_works(emulator, monkeypatch, tmp_path: Path):
    """SkyPilot searches with ``chunked=true``: the SDK then does ``gpu_ram & 0xffffffffff0``, which floats break."""
    vastai = pytest.importorskip("vastai")
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.setenv("VASTAI_NO_UPDATE_CHECK", "1")
    sdk = vastai.VastAI(api_key=emulator.api_key, server_url=emulator.url)
    offers = sdk.search_offers("chunked=true georegion=true gpu_name=RTX_4090 num_gpus=1")
    assert offers, "the chunked search found the RTX 4090 offers"
    assert all(o["gpu_name"] == "RTX 4090" for o in offers)


# -- 6: search without a key ---------------------------------------------------------------------------------------


def test_offer_search_is_served_without_a_key_but_not_with_a_wrong_one(api):
    url = api.url
    anonymous = requests.post(f"{url}/api/v0/bundles/", json={"gpu_name": {"eq": "RTX 4090"}}, timeout=10)
    assert anonymous.status_code == 200
    assert anonymous.json()["offers"]
    assert requests.get(f"{url}/api/v0/bundles/", params={"q": "{}"}, timeout=10).status_code == 200
    assert requests.put(f"{url}/api/v0/search/asks/", json={"q": {}}, timeout=10).status_code == 200
    wrong = requests.post(f"{url}/api/v0/bundles/", json={}, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.get(f"{url}/api/v0/users/current/", timeout=10).status_code == 401  # the rest still needs it


# -- 7: datacenter offers and filters ------------------------------------------------------------------------------


def search(api: Any, **filters: Any) -> list[dict[str, Any]]:
    return list(api.post("/api/v0/bundles/", json={"limit": 64, **filters}).json()["offers"])


def test_datacenter_filters_select_secure_cloud_offers(api):
    everything = search(api)
    datacenter = search(api, datacenter={"eq": True})
    community = search(api, datacenter={"eq": "false"})
    assert datacenter, "the market has datacenter offers"
    assert community, "and community ones"
    assert {o["hosting_type"] for o in datacenter} == {1}
    assert {o["hosting_type"] for o in community} == {0}
    assert len(datacenter) + len(community) == len(everything)
    skypilot = search(api, datacenter={"eq": True}, hosting_type={"gte": "1"}, gpu_name={"eq": "RTX 4090"})
    assert skypilot
    assert {o["hosting_type"] for o in skypilot} == {1}


def test_unknown_filter_fields_are_ignored_as_vast_does(api):
    """gpuhunt filters on compute_capability, which no offer has, and Vast answers with offers."""
    assert search(api, compute_capability={"gte": "600"}) == search(api)


def test_the_default_journeys_cheapest_offer_is_unchanged(api):
    cheapest = search(
        api,
        verified={"eq": True},
        rentable={"eq": True},
        gpu_name={"eq": "RTX 4090"},
        num_gpus={"eq": "1"},
        order=[["dph_total", "asc"]],
    )[0]
    assert cheapest["id"] == SEED_OFFER
    assert cheapest["hosting_type"] == 0


# -- 8: both shapes of a failed boot -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "status"), [("oci_error", "created"), ("exits", "exited")])
def test_a_failed_boot_ends_in_the_chosen_shape_and_stays(make_emulator, make_api, fault, status):
    api = make_api(make_emulator(profile="manual", ssh=False, faults=Faults(create_faults=[fault])))
    instance_id = api.create()
    api.advance(instance_id, 2)
    row = api.row(instance_id)
    assert (row["actual_status"], row["status_msg"]) == (status, OCI_ERROR_MSG)
    assert "OCI runtime create failed" in row["status_msg"]
    assert row["intended_status"] == "running"
    stuck = api.post(f"/_emulator/instances/{instance_id}/advance")
    assert stuck.status_code == 409
    assert api.row(instance_id)["actual_status"] == status


# -- 9: bids -------------------------------------------------------------------------------------------------------


def offer(api: Any, offer_id: int = SEED_OFFER) -> dict[str, Any]:
    return search(api, id={"eq": offer_id})[0]


def test_a_bid_below_min_bid_creates_a_stopped_instance_and_says_so(api, emulator):
    min_bid = offer(api)["min_bid"]
    body = {"image": "img", "disk": 20, "price": round(min_bid / 2, 4)}
    answer = api.put(f"/api/v0/asks/{SEED_OFFER}/", json=body)
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["success"] is False
    assert "minimum bid" in reply["msg"]
    row = api.row(reply["new_contract"])
    assert (row["intended_status"], row["cur_state"], row["next_state"]) == ("stopped", "stopped", "stopped")
    assert row["actual_status"] is None
    assert api.post(f"/_emulator/instances/{reply['new_contract']}/advance").status_code == 409
    assert emulator.world.ledger()["gpu_cost"] == 0.0


def test_the_outbid_create_fault_raises_the_minimum_bid_between_search_and_create(api, emulator):
    other = next(o for o in search(api) if o["id"] != SEED_OFFER)
    bid = offer(api)["min_bid"]
    emulator.world.set_faults(Faults(create_faults=["outbid", "outbid"]))
    on_demand = api.row(api.create(other["id"]))  # consumes one fault, unchanged: there is no bid to outbid
    assert (on_demand["intended_status"], on_demand["min_bid"]) == ("running", other["min_bid"])
    reply = api.put(f"/api/v0/asks/{SEED_OFFER}/", json={"image": "img", "disk": 20, "price": bid}).json()
    assert (reply["success"], reply["error"]) == (False, "bid_too_low")  # at the minimum bid seen by the search
    row = api.row(reply["new_contract"])
    assert (row["intended_status"], row["actual_status"]) == ("stopped", None)
    assert row["min_bid"] == round(bid * 1.25 + 0.001, 4)


def test_an_interruptible_instance_can_be_outbid_and_not_restarted_below_the_new_price(api):
    bid = offer(api)["min_bid"]
    instance_id = api.create(price=bid)
    api.advance(instance_id, 3)
    assert api.row(instance_id)["actual_status"] == "running"
    outbid = api.post(f"/_emulator/instances/{instance_id}/outbid", json={})
    assert outbid.status_code == 200
    assert outbid.json()["min_bid"] > bid
    row = api.row(instance_id)
    assert (row["actual_status"], row["intended_status"], row["cur_state"]) == ("exited", "stopped", "stopped")
    assert "outbid" in row["status_msg"]
    assert row["ports"] is None
    refused = api.put(f"/api/v0/instances/{instance_id}/", json={"state": "running"})
    assert refused.status_code == 200
    assert refused.json()["success"] is False
    assert api.row(instance_id)["intended_status"] == "stopped"


def test_an_on_demand_instance_cannot_be_outbid(api):
    instance_id = api.create()
    assert api.post(f"/_emulator/instances/{instance_id}/outbid", json={}).status_code == 409


# -- 10: the smaller rules -----------------------------------------------------------------------------------------


def test_env_as_a_string_is_accepted_and_not_applied(api, emulator):
    instance_id = api.create(env="-e A=1 -p 8080:8080")
    api.advance(instance_id, 2)
    row = api.row(instance_id)
    assert row["extra_env"] == []
    assert "8080/tcp" not in row["ports"]


def test_an_unknown_template_hash_is_refused(api, emulator):
    answer = api.put(f"/api/v0/asks/{SEED_OFFER}/", json={"template_hash_id": "0123456789abcdef", "disk": 20})
    assert answer.status_code == 404
    assert answer.json()["success"] is False
    assert emulator.world.history() == []


@pytest.mark.parametrize("gone_first", [True, False])
def test_a_bulk_destroy_naming_a_gone_id_destroys_nothing_whatever_the_order(api, emulator, gone_first):
    live, gone = api.create(SEED_OFFER), api.create(29305521)
    assert api.delete(f"/api/v0/instances/{gone}/").ok
    ids = [gone, live] if gone_first else [live, gone]
    answer = api.request("DELETE", "/api/v0/instances/", json={"instance_ids": ids})
    assert answer.status_code == 404
    assert answer.json()["error"] == "no_such_instance"
    assert emulator.world.live_ids() == [live]
    stop = api.put("/api/v0/instances/", json={"state": "stopped", "ids": ids})
    assert stop.status_code == 404
    assert api.row(live)["intended_status"] == "running"
