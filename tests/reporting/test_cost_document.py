"""Per-test apportioning, the JSON document, its schema check and merge, Markdown, GitHub lines, the SVG chart."""

from __future__ import annotations

import json

import pytest

from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.reporting import document, github, html, jsonreport, markdown
from pytest_dumont.reporting.apportion import hold_shares, overhead_cost
from pytest_dumont.reporting.phases import usd
from pytest_dumont.reporting.svg import bar_chart
from pytest_dumont.vast.models import Offer, StatusChange

OFFER = Offer.from_api(
    {"id": 29292839, "gpu_name": "RTX 4090", "dph_base": 0.1647, "storage_cost": 0.1512, "geolocation": "BC, CA"}
)


def seed_record(holds: list[Hold] | None = None) -> InstanceRecord:
    """The seed run's times: created 2.85 s, running 75.62 s, ready 87.98 s, destroyed 98.98 s."""
    record = InstanceRecord(29441924, "dumont-x-1", OFFER, 20, 0.0, 2.85, 75.62, 87.98, 98.98)
    for name, start, duration in [("search", 0.0, 1.26), ("create", 1.26, 1.59), ("wait_running", 2.85, 72.77)]:
        record.phases.append(PhaseTiming(name, start, duration, instance_id=29441924))
    record.phases.append(PhaseTiming("create file", 88.0, 4.18, kind="user"))
    record.timeline = [StatusChange(0.0, "unknown"), StatusChange(72.8, "running")]
    record.holds = holds if holds is not None else [Hold("t::a", 87.98, 92.2, 85.1), Hold("t::b", 92.2, 94.4)]
    return record


def test_tests_and_overhead_add_up_to_the_billed_estimate():
    record = seed_record()
    shares = hold_shares(record, now=100.0)
    assert [s.nodeid for s in shares] == ["t::a", "t::b"]
    assert sum(s.cost for s in shares) + overhead_cost(record, 100.0) == pytest.approx(record.billed_cost(100.0))
    # t::a held 4.22 s of running time: GPU and storage for that long.
    assert shares[0].cost == pytest.approx((0.1647 + 20 * 0.1512 / 720) * 4.22 / 3600)
    assert shares[0].waited_seconds == 85.1


def test_time_two_tests_held_at_once_is_split_between_them():
    record = seed_record([Hold("t::a", 90.0, 94.0), Hold("t::b", 92.0, 94.0)])
    a, b = hold_shares(record, now=100.0)
    rate = record.interval_cost(0, 1, 100.0) - record.interval_cost(0, 0, 100.0)
    per_second = record.interval_cost(90.0, 91.0, 100.0)
    assert rate == 0.0  # before creation nothing is billed
    assert a.cost == pytest.approx(per_second * 3)  # 2 s alone + 2 s shared by two
    assert b.cost == pytest.approx(per_second * 1)


def test_the_document_round_trips_to_the_same_record_and_costs():
    record = seed_record()
    entry = document.instance_entry(record, 100.0)
    json.dumps(entry)  # JSON-able: it crosses xdist and lands in files
    again = document.record_from_entry(entry)
    assert again.billed_cost(100.0) == pytest.approx(record.billed_cost(100.0))
    assert [(p.name, p.kind) for p in again.phases] == [(p.name, p.kind) for p in record.phases]
    assert entry["cost"]["simple_usd"] == pytest.approx(0.1689 * 98.98 / 3600, rel=1e-3)
    assert entry["cost"]["bandwidth_usd"] is None


def test_projections_and_other_clouds_come_from_the_dated_data_file():
    doc = document.build([document.instance_entry(seed_record(), 100.0)], {"t::a": "passed"}, session={"id": "s"})
    p = doc["projections"]
    assert "seed report" in p["prices_source"] and p["prices_date"] == "2026-01-02"
    hour = next(o for o in p["operations"] if o["seconds"] == 3600)
    assert hour["cost_usd"] == pytest.approx(0.1689, rel=1e-3)
    aws = next(c for c in p["comparison"] if c["provider"] == "AWS")
    assert aws["usd_per_hour"] == 1.006 and aws["cost_usd"] == pytest.approx(1.006 * 98.98 / 3600)
    assert doc["tests"][0]["outcome"] == "passed" and doc["tests"][1]["outcome"] == "unknown"


def doc_with(record: InstanceRecord) -> dict:
    return document.build([document.instance_entry(record, 100.0)], {}, session={"id": "s"})


def test_a_report_of_another_schema_version_is_refused_by_name(tmp_path):
    doc = doc_with(seed_record())
    doc["schema_version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(
        jsonreport.ReportError, match=r"future.json has schema_version 99; this pytest-dumont reads version 1"
    ):
        jsonreport.read(path)


def test_merge_adds_up_instances_and_tests(tmp_path):
    docs = [doc_with(seed_record()), doc_with(seed_record())]
    merged = jsonreport.merge(docs)
    assert merged["totals"]["instances"] == 2 and merged["totals"]["tests"] == 4
    assert merged["totals"]["billed_usd"] == pytest.approx(2 * docs[0]["totals"]["billed_usd"])


def test_an_unwritable_report_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(jsonreport.ReportError, match=r"cannot write .*file/r.json"):
        jsonreport.write(blocker / "r.json", {"a": 1})


def test_markdown_shows_the_seed_picture():
    text = markdown.render(doc_with(seed_record()))
    for needle in (
        "| search offers |",
        "| create file |",
        "status: unknown 0.0s → running 72.8s",
        "cost by test",
        "| AWS (g5.xlarge) | A10G | $1.006 |",
        "all instances destroyed",
        "simple (dph_total x wall)",
    ):
        assert needle in text


def test_the_summaries_list_the_costliest_tests_and_sum_up_the_rest():
    # 30 tests, each holding the instance a second longer than the one before: the last one is the costliest.
    holds = [Hold(f"t::{i:02d}", 60.0 + i, 61.0 + 2 * i) for i in range(30)]
    doc = doc_with(seed_record(holds))
    costs = sorted((t["cost_usd"] for t in doc["tests"]), reverse=True)
    text = markdown.render(doc)
    assert "`t::29`" in text and "`t::10`" in text and "`t::09`" not in text  # the 20 costliest, no more
    assert f"| 10 more test(s), every one in the JSON report | | | | {usd(sum(costs[20:]))} |" in text
    page = "".join(html.summary(doc))
    assert "t::29" in page and "t::10" in page and "t::09" not in page
    assert f"10 more test(s): sort the results by Cost ($)</td><td>{usd(sum(costs[20:]))}" in page
    assert len(document.costliest_tests(doc, limit=30)[0]) == 30 and document.costliest_tests(doc, 30)[1] == 0


def test_a_leak_and_an_overrun_become_warnings():
    record = seed_record()
    record.destroyed_at = None
    lines = github.warning_lines(doc_with(record), budget_usd=0.000001)
    assert lines[0].startswith("::warning title=pytest-dumont leak::instance 29441924")
    assert lines[1].startswith("::warning title=pytest-dumont budget::the session cost")
    assert github.warning_lines(doc_with(seed_record())) == []


def test_the_bar_chart_draws_one_bar_per_phase_sized_by_its_share():
    svg = bar_chart([("wait <running>", 3.0, "provision"), ("create file", 1.0, "user")])
    assert svg.startswith("<svg") and svg.count("<rect") == 2
    assert "wait &lt;running&gt;" in svg and "75.0%" in svg and "25.0%" in svg


def test_a_tests_numbers_have_its_own_phases_and_the_provisioning_only_if_it_waited_for_it():
    from pytest_dumont.reporting.per_test import data_for_test

    # t::a asked when the search started: it waited for the whole boot. t::b ran "make" after t::a's "create file".
    record = seed_record([Hold("t::a", 87.98, 92.2, 87.98), Hold("t::b", 92.2, 94.4)])
    record.phases.append(PhaseTiming("$ make", 92.5, 1.0, kind="command"))
    record.facts = {"disk": "/dev/vda 20G"}
    first, second = (data_for_test(record, hold, 100.0) for hold in record.holds)
    assert [p["name"] for p in first["phases"]] == ["search", "create", "wait_running", "create file"]
    assert first["timeline"] and first["facts"] == record.facts and first["provision_seconds"] == 87.98
    assert second["facts"] == {}
    assert [p["name"] for p in second["phases"]] == ["$ make"] and second["timeline"] == []
    assert second["cost_usd"] == pytest.approx(record.interval_cost(92.2, 94.4, 100.0))
    assert second["phases"][0]["cost_usd"] == pytest.approx(record.interval_cost(92.5, 93.5, 100.0))


def test_the_columns_sort_in_numeric_order_the_way_pytest_html_sorts_them():
    """pytest-html keeps each sortable cell's inner HTML (its own regular expressions) and its page compares those
    as strings: the order of the numbers must survive that."""
    from types import SimpleNamespace

    from pytest_html.basereport import BaseReport

    from pytest_dumont.plugin import pytest_html_results_table_header

    header: list[str] = []
    pytest_html_results_table_header(header)
    pytest_html = SimpleNamespace(_report=SimpleNamespace(table_header=header))
    values = [0.0, 0.000012, 0.0046, 0.01, 9.99, 10.0, 123.456, 4321.5]
    kept = {}  # value -> the strings pytest-html keeps for that row
    for value in values:
        data: dict[str, str] = {}
        cells = html.row_cells(
            {"gpu_name": "RTX 4090", "dph_total": value, "provision_seconds": value, "cost_usd": value}
        )
        BaseReport._hydrate_data(pytest_html, data, cells)
        kept[value] = data
    for column in ("dumont_dph", "dumont_provision", "dumont_cost"):
        as_strings = [kept[v][column] for v in values]  # in numeric order
        assert as_strings == sorted(as_strings), column
    assert kept[0.000012]["dumont_cost"].strip() == "$0.000012" and kept[4321.5]["dumont_dph"].strip() == "4321.5000"
    assert kept[10.0]["dumont_gpu"] == "RTX 4090"
