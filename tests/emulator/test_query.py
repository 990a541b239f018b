"""Server-side query semantics: offer filters as the CLI sends them, ordering, caps, pricing, the v1 list."""

from __future__ import annotations

import pytest
from cli_recorded import cli_recorded_query

from pytest_dumont.emulator.market import load_market
from pytest_dumont.emulator.query import (
    MAX_OFFERS,
    QueryError,
    decode_token,
    encode_token,
    list_instances,
    search_offers,
)


def offer(offer_id: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": offer_id,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "dph_base": 0.2,
        "storage_cost": 0.1,
        "disk_space": 100,
        "reliability": 0.99,
    }
    base.update(fields)
    return base


@pytest.fixture(scope="module")
def market() -> list[dict[str, object]]:
    return load_market(
        [
            offer(1, dph_base=0.30, reliability=0.999, geolocation="Texas, US", driver_version="570.86.15"),
            offer(2, dph_base=0.15, reliability=0.90, geolocation="Bulgaria, BG", verification="unverified"),
            offer(3, dph_base=0.20, reliability=0.98, geolocation="Quebec, CA", driver_version="535.86.05"),
            offer(4, gpu_name="RTX 3090", dph_base=0.10, num_gpus=2, geolocation="Ohio, US"),
            offer(5, gpu_name="A100 SXM4", dph_base=1.10, storage_cost=0.3, geolocation="Oregon, US"),
        ]
    )


def ids(offers: list[dict[str, object]]) -> list[object]:
    return [o["id"] for o in offers]


def by_id(query: dict[str, object], market: list[dict[str, object]]) -> list[object]:
    return ids(search_offers(market, {**query, "order": [["id", "asc"]]}))


def test_the_cli_recorded_query_selects_by_coerced_strings_and_country_codes(market):
    # The exact body CLI 1.9.1 sent for a typical search (vast-api.md section 2).
    query = cli_recorded_query(limit=5)
    assert ids(search_offers(market, query)) == [1]
    query["reliability"] = {"gte": "0.98"}
    assert ids(search_offers(market, query)) == [3, 1]


@pytest.mark.parametrize("name", ["RTX 4090", "RTX_4090"])
def test_underscores_and_spaces_name_the_same_gpu(market, name):
    assert by_id({"gpu_name": {"eq": name}}, market) == [1, 2, 3]
    assert by_id({"gpu_name": {"in": [name, "A100_SXM4"]}}, market) == [1, 2, 3, 5]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "0.2", [3]),
        ("neq", "0.2", [1, 2, 4, 5]),
        ("gt", "0.2", [1, 5]),
        ("gte", "0.2", [1, 3, 5]),
        ("lt", "0.2", [2, 4]),
        ("lte", "0.2", [2, 3, 4]),
        ("in", ["0.1", 0.3], [1, 4]),
        ("notin", ["0.1", "0.3"], [2, 3, 5]),
    ],
)
def test_each_operator_on_a_number_sent_as_a_string(market, op, value, expected):
    assert by_id({"dph_base": {op: value}}, market) == expected


def test_booleans_arrive_as_json_or_as_text(market):
    assert by_id({"verified": {"eq": True}}, market) == [1, 3, 4, 5]
    assert by_id({"verified": {"eq": "false"}}, market) == [2]


def test_driver_version_filters_use_the_cli_integer_form(market):
    # "driver_version>=550.0.0" leaves the CLI as the integer 550000000.
    assert by_id({"driver_version": {"gte": 550000000}}, market) == [1, 2, 4, 5]
    assert by_id({"driver_version": {"eq": "535.86.05"}}, market) == [3]


def test_a_type_mismatch_is_a_400_and_an_unknown_field_is_ignored(market):
    with pytest.raises(QueryError) as info:
        search_offers(market, {"num_gpus": {"eq": "one"}})
    assert info.value.error == "invalid_args"
    with pytest.raises(QueryError):
        search_offers(market, {"num_gpus": {"between": [1, 2]}})
    assert by_id({"no_such_field": {"eq": 1}}, market) == [1, 2, 3, 4, 5]


def test_order_is_multi_key_and_limit_is_honoured(market):
    query = {"order": [["gpu_name", "desc"], ["dph_base", "asc"]], "limit": 4}
    assert ids(search_offers(market, query)) == [2, 3, 1, 4]
    assert ids(search_offers(market, {"order": [["dph_total", "desc"]], "limit": "2"})) == [5, 1]


def test_the_default_order_is_score_descending(market):
    scores = [o["score"] for o in search_offers(market, {})]
    assert scores == sorted(scores, reverse=True)


def test_no_search_returns_more_than_64_offers_whatever_the_limit():
    big = load_market([offer(i) for i in range(1, 101)])
    assert len(search_offers(big, {"limit": 1000})) == MAX_OFFERS
    assert len(search_offers(big, {})) == MAX_OFFERS
    assert len(search_offers(big, {"limit": 10})) == 10


def test_dph_total_prices_the_allocated_storage(market):
    (default,) = search_offers(market, {"id": {"eq": 5}})
    assert default["storage_total_cost"] == pytest.approx(5.0 * 0.3 / 720)
    assert default["dph_total"] == pytest.approx(1.10 + 5.0 * 0.3 / 720)
    (big,) = search_offers(market, {"id": {"eq": 5}, "allocated_storage": "100"})
    assert big["dph_total"] == pytest.approx(1.10 + 100 * 0.3 / 720)
    assert big["search"]["totalHour"] == pytest.approx(big["dph_total"])
    assert by_id({"dph_total": {"lte": 0.2}}, market) == [2, 4]  # 0.2 + storage is over


def test_bid_type_prices_at_min_bid_and_unknown_types_are_refused(market):
    (bid,) = search_offers(market, {"id": {"eq": 1}, "type": "bid"})
    assert bid["dph_total"] == pytest.approx(bid["min_bid"] + 5 * 0.1 / 720)
    for spelling in ("ondemand", "on-demand", "interruptible", "reserved"):
        assert search_offers(market, {"id": {"eq": 1}, "type": spelling})
    with pytest.raises(QueryError):
        search_offers(market, {"type": "spot"})


# -- v1 instance list -----------------------------------------------------------------------------------------------


def rows(count: int) -> list[dict[str, object]]:
    return [
        {
            "id": 100 + i,
            "actual_status": "running" if i % 2 else "loading",
            "label": f"job-{i % 3}" if i % 4 else None,
            "gpu_name": "RTX 4090",
            "dph_total": 0.2,
        }
        for i in range(count)
    ]


def test_v1_pages_follow_next_token_to_the_end():
    data = rows(12)
    first = list_instances(data, {"limit": "5"})
    assert [r["id"] for r in first["instances"]] == [100, 101, 102, 103, 104]
    assert first["total_instances"] == first["instances_found"] == 12
    second = list_instances(data, {"limit": "5", "after_token": first["next_token"]})
    third = list_instances(data, {"limit": "5", "after_token": second["next_token"]})
    assert [r["id"] for r in third["instances"]] == [110, 111]
    assert third["next_token"] is None


@pytest.mark.parametrize(("limit", "page"), [("100", 25), ("0", 5), ("-3", 5), (None, 25)])
def test_v1_limit_is_capped_at_25_and_nonpositive_means_5(limit, page):
    params = {} if limit is None else {"limit": limit}
    assert len(list_instances(rows(40), params)["instances"]) == page


def test_v1_filters_stored_columns_and_refuses_computed_ones():
    data = rows(8)
    running = list_instances(data, {"select_filters": '{"actual_status": {"in": ["running"]}}'})
    assert [r["id"] for r in running["instances"]] == [101, 103, 105, 107]
    assert running["instances_found"] == 4
    assert running["total_instances"] == 8
    unlabeled = list_instances(data, {"select_filters": '{"label": {"in": [null]}}'})
    assert [r["id"] for r in unlabeled["instances"]] == [100, 104]
    with pytest.raises(QueryError) as info:
        list_instances(data, {"select_filters": '{"dph_total": {"lt": 1}}'})
    assert info.value.error == "invalid_request"
    assert info.value.msg == "Error in query parameters: dph_total is not a valid search key"


def test_v1_order_by_select_cols_and_label_counts():
    data = rows(6)
    page = list_instances(
        data,
        {"order_by": '[{"col": "actual_status", "dir": "desc"}]', "select_cols": '["label", "nonexistent"]'},
    )
    assert [r["id"] for r in page["instances"]] == [101, 103, 105, 100, 102, 104]
    assert page["instances"][0] == {"id": 101, "label": "job-1", "nonexistent": None}
    assert page["label_counts"] == {"": 2, "job-1": 1, "job-2": 2, "job-0": 1}


def test_v1_bad_tokens_and_bad_json_are_400s():
    with pytest.raises(QueryError) as info:
        list_instances(rows(3), {"after_token": "not-a-token"})
    assert info.value.error == "invalid_token"
    with pytest.raises(QueryError):
        list_instances(rows(3), {"select_filters": "{oops"})
    assert decode_token(encode_token(25)) == 25
