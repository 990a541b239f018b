"""The cost model: GPU while running, storage while existing, and the seed's simple dph_total x wall figure."""

from __future__ import annotations

import pytest

from pytest_dumont.provisioning.records import InstanceRecord, Ledger, PhaseTiming
from pytest_dumont.reporting.phases import record_rows
from pytest_dumont.reporting.terminal import render_instance, usd
from pytest_dumont.vast.models import Offer, StatusChange

SEED_OFFER = Offer.from_api(
    {"id": 29292839, "gpu_name": "RTX 4090", "dph_base": 0.1647, "storage_cost": 1.512, "disk_space": 100}
)


def seed_record() -> InstanceRecord:
    """The seed run: search at 0, create returned at 2.85 s, running at 75.62 s, destroyed at 98.98 s."""
    record = InstanceRecord(
        instance_id=29441924,
        label="dumont-x-1",
        offer=SEED_OFFER,
        disk_gb=20,
        search_started_at=0.0,
        created_at=2.85,
        running_at=75.62,
        ready_at=87.98,
        destroyed_at=98.98,
    )
    for name, start, duration in [
        ("search", 0.0, 1.26),
        ("create", 1.26, 1.59),
        ("wait_running", 2.85, 72.77),
        ("wait_ssh", 75.62, 12.36),
        ("destroy", 98.5, 0.48),
    ]:
        record.phases.append(PhaseTiming(name, start, duration, instance_id=29441924))
    record.phases.append(PhaseTiming("create file", 88.0, 4.18, kind="user"))
    record.timeline += [StatusChange(0.0, "unknown"), StatusChange(21.0, "loading"), StatusChange(72.8, "running")]
    return record


def test_dph_total_is_gpu_plus_storage_priced_per_30_day_month():
    record = seed_record()
    assert record.storage_dph == pytest.approx(20 * 1.512 / 720)
    assert record.dph_total == pytest.approx(0.1647 + 0.042)


def test_simple_cost_is_the_seed_reports_figure():
    record = seed_record()
    assert record.dph_total == pytest.approx(0.2067)
    assert record.wall_seconds(999) == pytest.approx(98.98)
    # The seed itself: $0.1689/h x 98.98 s = $0.0046.
    assert Offer.from_api({"id": 1, "dph_base": 0.1689}).dph_base * 98.98 / 3600 == pytest.approx(0.0046, abs=5e-5)
    assert record.simple_cost(999) == pytest.approx(0.2067 * 98.98 / 3600)


def test_billed_estimate_bills_gpu_only_while_running():
    record = seed_record()
    assert record.running_seconds(999) == pytest.approx(98.98 - 75.62)
    assert record.exists_seconds(999) == pytest.approx(98.98 - 2.85)
    expected = 0.1647 * (98.98 - 75.62) / 3600 + 0.042 * (98.98 - 2.85) / 3600
    assert record.billed_cost(999) == pytest.approx(expected)
    assert record.billed_cost(999) < record.simple_cost(999)


def test_a_live_record_accrues_until_now():
    record = seed_record()
    record.destroyed_at = None
    assert record.live
    assert record.billed_cost(200) > record.billed_cost(100)
    ledger = Ledger()
    ledger.add(record)
    assert ledger.live() == [record]
    assert ledger.billed_cost(200) == pytest.approx(record.billed_cost(200))


def test_phase_rows_follow_the_journey_and_fill_the_rest_as_tests():
    rows = record_rows(seed_record(), 999)
    labels = [row.label for row in rows]
    assert labels == [
        "search offers",
        "create instance",
        "wait for running",
        "wait for SSH",
        "create file",
        "tests (other)",
        "destroy instance",
    ]
    other = {row.label: row.seconds for row in rows}["tests (other)"]
    assert other == pytest.approx((98.5 - 87.98) - 4.18)


def test_rendered_table_has_bars_percentages_timeline_and_both_costs():
    text = "\n".join(render_instance(seed_record(), now=999))
    assert "wait for running      72.77   73.5%" in text
    assert "█" in text
    assert "status: unknown 0.0s -> loading 21.0s -> running 72.8s" in text
    assert "billed estimate" in text and "simple (dph_total x 99.0 s wall)" in text
    assert "destroyed: yes (confirmed)" in text


def test_small_amounts_keep_their_digits():
    assert usd(0.0046) == "$0.00460"
    assert usd(0.1689) == "$0.1689"
    assert usd(0.0000123456) == "$0.0000123"  # a test that held an instance for a second or so: never $0.000000
    assert usd(0) == "$0"
