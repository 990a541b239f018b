"""Offer filters: the query the API receives, the client-side check, and the explanation when nothing matches."""

from __future__ import annotations

from pytest_dumont.vast.models import Offer
from pytest_dumont.vast.offers import OfferFilters, normalise_gpu_name


def offer(**fields):
    base = {
        "id": 1,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "dph_total": 0.3,
        "disk_space": 100,
        "reliability": 0.99,
        "verified": True,
    }
    return Offer.from_api({**base, **fields})


def test_gpu_names_travel_with_spaces():
    assert normalise_gpu_name("RTX_4090") == "RTX 4090"
    q = OfferFilters(gpu_names=("RTX_4090",)).query()
    assert q["gpu_name"] == {"eq": "RTX 4090"}
    q = OfferFilters(gpu_names=("RTX 4090", "RTX_3090")).query()
    assert q["gpu_name"] == {"in": ["RTX 4090", "RTX 3090"]}


def test_query_carries_the_seed_filters_cheapest_first():
    q = OfferFilters(max_dph=0.5, min_disk_gb=20, min_reliability=0.9).query()
    assert q["dph_total"] == {"lte": 0.5}
    assert q["disk_space"] == {"gte": 20}
    assert q["reliability"] == {"gte": 0.9}
    assert q["order"] == [["dph_total", "asc"]]
    assert q["type"] == "on-demand"
    assert q["rentable"] == {"eq": True} and q["verified"] == {"eq": True}
    assert q["allocated_storage"] == 20.0


def test_client_side_check_catches_what_a_server_ignored():
    filters = OfferFilters(max_dph=0.5)
    assert filters.matches(offer())
    assert filters.rejections(offer(dph_total=0.9)) == ["max_dph"]
    assert filters.rejections(offer(gpu_name="RTX 3090")) == ["gpu"]
    assert filters.rejections(offer(verified=False)) == ["verified"]


def test_explain_names_each_filter_that_ruled_offers_out():
    filters = OfferFilters(max_dph=0.10, min_disk_gb=500)
    reasons = filters.explain([offer(dph_total=0.17, disk_space=100), offer(dph_total=0.25, disk_space=800)])
    text = "\n".join(reasons)
    assert "2 RTX 4090 offer(s) exist" in text
    assert "2 costs more than $0.1/h (cheapest is $0.1700/h)" in text
    assert "1 has less than 500 GB disk (largest has 800 GB)" in text
    assert "reliability" not in text


def test_explain_without_candidates_lists_gpus_on_offer():
    reasons = OfferFilters(gpu_names=("RTX 9090",)).explain([], ["A100", "RTX 4090", "A100"])
    assert reasons == ["there is no rentable RTX 9090 offer at all", "GPUs on offer now: A100, RTX 4090"]


def test_gpu_preference_follows_the_order_asked():
    filters = OfferFilters(gpu_names=("RTX 4090", "RTX_3090"))
    assert filters.preference(offer(gpu_name="RTX 4090")) == 0
    assert filters.preference(offer(gpu_name="RTX 3090")) == 1
    assert filters.preference(offer(gpu_name="A100")) == 2


def test_a_bid_searches_interruptible_prices_and_leaves_out_offers_asking_more():
    filters = OfferFilters(bid=0.1)
    assert filters.query()["type"] == "bid"
    assert filters.matches(offer(min_bid=0.08))
    assert filters.rejections(offer(min_bid=0.12)) == ["bid"]
    assert "1 asks a minimum bid above your $0.1/h (lowest is $0.1200/h)" in filters.explain([offer(min_bid=0.12)])
    assert "interruptible at a bid of $0.1/h" in filters.describe()


def test_an_on_demand_request_keeps_the_key_it_had_before_bids():
    # Cassette names and parking fingerprints hash these fields: recorded cassettes must still match.
    assert "bid" not in OfferFilters().key_fields()
    assert OfferFilters(bid=0.2).key_fields()["bid"] == 0.2
