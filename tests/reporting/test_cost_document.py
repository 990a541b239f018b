"""Per-test apportioning, the JSON document, its schema check and merge, Markdown, GitHub lines, the SVG chart."""

from __future__ import annotations

import json
import re

import pytest

from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.reporting import document, github, html, jsonreport, markdown
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
    entry = document.instance_entry(seed_record(), now=100.0)
    tests, cost = entry["tests"], entry["cost"]
    assert [t["nodeid"] for t in tests] == ["t::a", "t::b"]
    assert sum(t["cost_usd"] for t in tests) + cost["overhead_usd"] == pytest.approx(cost["billed_usd"])
    # t::a held 4.22 s of running time: GPU and storage for that long.
    assert tests[0]["cost_usd"] == pytest.approx((0.1647 + 20 * 0.1512 / 720) * 4.22 / 3600)
    assert tests[0]["waited_seconds"] == 85.1


def test_time_two_tests_held_at_once_is_split_between_them():
    record = seed_record([Hold("t::a", 90.0, 94.0), Hold("t::b", 92.0, 94.0)])
    a, b = document.instance_entry(record, now=100.0)["tests"]
    rate = record.interval_cost(0, 1, 100.0) - record.interval_cost(0, 0, 100.0)
    per_second = record.interval_cost(90.0, 91.0, 100.0)
    assert rate == 0.0  # before creation nothing is billed
    assert a["cost_usd"] == pytest.approx(per_second * 3)  # 2 s alone + 2 s shared by two
    assert b["cost_usd"] == pytest.approx(per_second * 1)


def test_the_document_round_trips_to_the_same_record_and_costs():
    record = seed_record()
    entry = document.instance_entry(record, 100.0)
    json.dumps(entry)  # JSON-able: it crosses xdist and lands in files
    again = document.record_from_entry(entry)
    assert again.billed_cost(100.0) == pytest.approx(record.billed_cost(100.0))
    assert [(p.name, p.kind) for p in again.phases] == [(p.name, p.kind) for p in record.phases]
    assert again.holds == record.holds
    assert entry["cost"]["simple_usd"] == pytest.approx(0.1689 * 98.98 / 3600, rel=1e-3)
    assert entry["cost"]["bandwidth_usd"] is None


def test_projections_come_from_this_run_and_other_clouds_from_the_packaged_prices():
    doc = document.build(
        [document.instance_entry(seed_record(), 100.0)], {"t::a": "passed"}, session={"id": "s"}, runs_per_day=4
    )
    p = doc["projections"]
    billed = doc["totals"]["billed_usd"]
    assert p["per_run_usd"] == billed and p["per_day_usd"] == pytest.approx(4 * billed)
    assert p["per_month_usd"] == pytest.approx(4 * 30 * billed)
    assert p["overhead_share"] == pytest.approx(doc["totals"]["overhead_usd"] / billed)
    assert [c["nodeid"] for c in p["costliest"]] == ["t::a", "t::b"]  # t::a held it longer
    assert p["operations"] == []  # the seed's operations belong to the scenarios' report only
    assert "seed" not in json.dumps(p)
    aws = next(c for c in p["comparison"] if c["provider"] == "AWS")
    assert aws["usd_per_hour"] == 1.006 and aws["cost_usd"] == pytest.approx(1.006 * 98.98 / 3600)
    assert aws["region"] == "us-east-1" and aws["source"].startswith("https://aws.amazon.com/")
    assert all(c["source"].startswith("https://") and c["date"] for c in p["comparison"])
    assert doc["tests"][0]["outcome"] == "passed" and doc["tests"][1]["outcome"] == "unknown"


def test_a_scenario_run_prices_the_scenarios_operations():
    entry = document.instance_entry(seed_record(), 100.0)
    figures = {"t::a": [{"name": "failover total", "value": 3.0, "unit": "s"}]}
    doc = document.build([entry], {}, session={"id": "s"}, figures=figures)
    hour = next(o for o in doc["projections"]["operations"] if o["seconds"] == 3600)
    assert hour["cost_usd"] == pytest.approx(0.1689, rel=1e-3)


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
        "| AWS (g5.xlarge) | A10G | us-east-1 | $1.006 |",
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
    assert f'10 more test(s): sort the results by Cost ($)</td><td class="dumont-num">{usd(sum(costs[20:]))}' in page
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


def test_a_tests_numbers_have_its_own_phases_and_the_provisioning_only_if_it_was_first():
    from pytest_dumont.reporting.per_test import data_for_test

    # t::a was the first to hold the instance: it waited for the boot. t::b ran "make" after t::a's "create file".
    record = seed_record([Hold("t::a", 87.98, 92.2, 87.98), Hold("t::b", 92.2, 94.4)])
    record.phases[-1] = PhaseTiming("create file", 88.0, 4.18, kind="user", test="t::a")
    record.phases.append(PhaseTiming("$ make", 92.5, 1.0, kind="command", test="t::b"))
    record.facts = {"disk": "/dev/vda 20G"}
    first, second = (data_for_test(record, hold, 100.0) for hold in record.holds)
    assert [p["name"] for p in first["phases"]] == ["search", "create", "wait_running", "create file"]
    assert first["timeline"] and first["facts"] == record.facts and first["provision_seconds"] == 87.98
    assert second["facts"] == {}
    assert [p["name"] for p in second["phases"]] == ["$ make"] and second["timeline"] == []
    assert second["cost_usd"] == pytest.approx(record.interval_cost(92.2, 94.4, 100.0))
    assert second["phases"][0]["cost_usd"] == pytest.approx(record.interval_cost(92.5, 93.5, 100.0))


def test_with_prewarming_the_first_test_has_the_timeline_though_the_boot_began_before_it_asked():
    from pytest_dumont.reporting.per_test import data_for_test

    # Prewarming searched at 0.0 while collection went on; the first GPU test asked at 50.0 and waited 37.98 s.
    record = seed_record([Hold("t::first", 87.98, 90.0, 37.98), Hold("t::second", 90.0, 91.0)])
    first, second = (data_for_test(record, hold, 100.0) for hold in record.holds)
    assert [c["status"] for c in first["timeline"]] == ["unknown", "running"]
    assert [p["name"] for p in first["phases"]] == ["search", "create", "wait_running"]
    assert second["timeline"] == [] and second["phases"] == []


def test_the_columns_sort_in_numeric_order_the_way_pytest_html_sorts_them():
    """pytest-html keeps each sortable cell's inner HTML (its own regular expressions) and its page compares those
    as strings: the order of the numbers must survive that."""
    from types import SimpleNamespace

    from pytest_html.basereport import BaseReport

    from pytest_dumont.plugin import pytest_html_results_table_header

    header: list[str] = []
    pytest_html_results_table_header(header)
    pytest_html = SimpleNamespace(_report=SimpleNamespace(table_header=header))
    values = [
        0.0,
        0.0000000362,
        0.000012,
        0.00009,
        0.000999,
        0.001,
        0.0046,
        0.00999,
        0.01,
        0.0101,
        9.99,
        10.0,
        123.456,
        4321.5,
    ]
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
    assert kept[0.000012]["dumont_cost"].strip() == "$0.0000120" and kept[4321.5]["dumont_dph"].strip() == "4321.5000"
    assert kept[10.0]["dumont_gpu"] == "RTX 4090"


def test_the_summarys_phase_tables_have_a_cost_on_every_row_and_their_total():
    page = "".join(html.summary(doc_with(seed_record())))
    table = page[page.index('<table class="dumont-phases">') : page.index("</table>")]
    rows = re.findall(r"<tr class=\"dumont-depth-\d[^\"]*\"[^>]*>(.*?)</tr>", table)
    assert len(rows) == 5  # search, create, wait for running, create file, tests (other)
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[4].startswith("$"), row
    footer = re.findall(r"<td[^>]*>(.*?)</td>", table[table.index("<tfoot>") :])
    assert footer[0] == "total" and footer[4].startswith("$0.")
    markdown_rows = [line for line in markdown.render(doc_with(seed_record())).splitlines() if "| create file" in line]
    assert markdown_rows and markdown_rows[0].split("|")[4].strip().startswith("$")


def test_an_instances_table_nests_phases_and_each_level_adds_up_to_its_parent():
    from pytest_dumont.reporting.phases import record_rows, total_row

    record = seed_record()
    record.phases[-1] = PhaseTiming("create file", 88.0, 4.0, kind="user", test="t::a")
    record.phases.insert(-1, PhaseTiming("mkdir", 88.5, 1.0, kind="user", test="t::a", depth=1))
    record.phases.insert(-1, PhaseTiming("printf", 89.5, 2.0, kind="user", test="t::a", depth=1))
    rows = record_rows(record, 100.0)
    labels = [(r.label, r.depth) for r in rows]
    assert labels[3:7] == [("create file", 0), ("mkdir", 1), ("printf", 1), ("(other)", 1)]
    assert [round(r.share, 1) for r in rows[4:7]] == [25.0, 50.0, 25.0]  # of "create file"'s 4 s
    assert sum(r.share for r in rows if r.depth == 0) == pytest.approx(100.0)
    seconds, cost = total_row(rows)
    in_use = 98.98 - 87.98  # ready to destroyed: this record has no destroy phase
    assert seconds == pytest.approx(1.26 + 1.59 + 72.77 + in_use)  # the nested 3 s are not added again
    assert cost == pytest.approx(sum(r.cost for r in rows if r.depth == 0))


def test_an_instances_rows_are_made_once_with_its_entry_and_every_renderer_shows_those(tmp_path):
    from pytest_dumont.reporting import terminal
    from pytest_dumont.reporting.phases import instance_rows, rows_of

    doc = doc_with(seed_record())
    entry = doc["instances"][0]
    made = rows_of(entry)
    assert [r.label for r in made] == ["search offers", "create instance", "wait for running", "create file",
                                       "tests (other)"]  # fmt: skip
    assert made == instance_rows(entry)  # the record's own costs or the entry's: the same table
    entry["rows"][3]["label"] = "create file, as the entry holds it"
    for shown in (markdown.render(doc), "".join(html.summary(doc)), "\n".join(terminal.render_entry(entry))):
        assert "create file, as the entry holds it" in shown
    path = tmp_path / "run.json"
    jsonreport.write(path, doc)
    assert jsonreport.read(path)["instances"][0]["rows"] == entry["rows"]
    del entry["rows"]  # a report written before the rows were in it: reading it makes them
    jsonreport.write(path, doc)
    assert rows_of(jsonreport.read(path)["instances"][0]) == made


def test_small_costs_keep_three_significant_digits_everywhere():
    assert usd(0.0000465) == "$0.0000465" and usd(0.00460) == "$0.00460" and usd(0.1689) == "$0.1689"
    assert usd(0) == "$0"
    cell = html.cost_cell(0.0000012)
    assert cell.endswith(">        $0.00000120</td>")


def test_a_run_that_rented_nothing_renders_without_tables_or_division_by_zero():
    doc = document.build([], {"t::cpu": "passed"}, session={"id": "s"})
    assert doc["totals"]["billed_usd"] == 0 and doc["projections"]["overhead_share"] == 0.0
    assert doc["projections"]["costliest"] == [] and all(
        c["times_vast"] is None for c in doc["projections"]["comparison"]
    )
    assert html.summary(doc) == []
    text = markdown.render(doc)
    assert "| phase |" not in text and "cost by test" not in text
    merged = jsonreport.merge([doc, doc])
    assert merged["totals"]["instances"] == 0 and markdown.render(merged)


def test_a_report_written_before_nesting_gpu_spans_and_run_projections_still_merges_and_renders(tmp_path):
    doc = doc_with(seed_record())
    entry = doc["instances"][0]
    del entry["gpu_spans"], entry["times"]["billing_ended_at"], entry["rows"]
    for phase in entry["phases"]:
        del phase["test"], phase["depth"], phase["parent"]
    doc["projections"] = {
        "dph_total": 0.1689, "operations": [{"name": "1 day", "seconds": 86400, "cost_usd": 4.05}],
        "comparison": [{"provider": "AWS", "instance_type": "g5.xlarge", "gpu": "A10G", "usd_per_hour": 1.006,
                        "cost_usd": 0.02, "times_vast": 6.0}],
        "prices_source": "the seed report", "prices_date": "2026-01-02",
    }  # fmt: skip
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    merged = jsonreport.merge([jsonreport.read(path), doc_with(seed_record())])
    assert merged["totals"]["billed_usd"] == pytest.approx(2 * doc["totals"]["billed_usd"])
    assert merged["projections"]["comparison"][0]["region"]  # the packaged prices, the old report had none
    assert "create file" in markdown.render(merged) and "create file" in "".join(html.summary(merged))


def test_a_malformed_reference_prices_file_names_the_file_and_the_entry(tmp_path):
    from pytest_dumont.data.prices import ReferencePricesError, load

    path = tmp_path / "ours.json"
    good = {
        "provider": "AWS", "instance_type": "g6.xlarge", "gpu": "L4", "usd_per_hour": 0.805, "region": "us-east-1",
        "date": "2026-11-30", "source": "https://aws.amazon.com/ec2/pricing/on-demand/",
    }  # fmt: skip
    cases = [
        ("{", r"ours.json is not JSON"),
        (json.dumps([good]), r'ours.json: expected \{"prices": \[...\]\}'),
        (json.dumps({"prices": [good, {**good, "date": "30/11/2026"}]}), r"ours.json: entry 1 \(AWS\): date must be"),
        (json.dumps({"prices": [{**good, "source": ""}]}), r"ours.json: entry 0 \(AWS\): source is missing or empty"),
        (json.dumps({"prices": [{**good, "usd_per_hour": -1}]}), r"entry 0 \(AWS\): usd_per_hour must be a positive"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(ReferencePricesError, match=message):
            load(path)
    path.write_text(json.dumps({"prices": [good]}))
    assert load(path)["prices"][0]["usd_per_hour"] == 0.805
    packaged = load()
    assert all(p["source"].startswith("https://") and p["region"] and p["date"] for p in packaged["prices"])
