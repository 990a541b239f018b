"""The fingerprint of what was asked, and the parked entry's data: what decides that an instance may be adopted."""

from __future__ import annotations

import pytest

from pytest_dumont.provisioning.contracts import ProvisionRequest
from pytest_dumont.safety.fingerprint import describe, fingerprint
from pytest_dumont.safety.ledger_file import LedgerEntry
from pytest_dumont.safety.parked import ParkedInfo
from pytest_dumont.vast.offers import OfferFilters

API = "https://console.vast.ai"
BASE = ProvisionRequest(filters=OfferFilters(), image="img:1", onstart="echo hi", env=(("A", "1"), ("TOKEN", "s3cr3t")))


@pytest.mark.parametrize(
    "other",
    [
        ProvisionRequest(filters=OfferFilters(), image="img:2", onstart="echo hi", env=BASE.env),
        ProvisionRequest(filters=OfferFilters(disk_gb=40), image="img:1", onstart="echo hi", env=BASE.env),
        ProvisionRequest(filters=OfferFilters(gpu_names=("RTX 3090",)), image="img:1", onstart="echo hi", env=BASE.env),
        ProvisionRequest(filters=OfferFilters(), image="img:1", onstart=None, env=BASE.env),
        ProvisionRequest(
            filters=OfferFilters(), image="img:1", onstart="echo hi", env=(("A", "2"), ("TOKEN", "s3cr3t"))
        ),
    ],
    ids=["image", "disk", "gpu", "onstart", "env value"],
)
def test_anything_asked_differently_changes_the_fingerprint(other):
    assert fingerprint(other, API) != fingerprint(BASE, API)


def test_the_fingerprint_ignores_env_order_and_a_trailing_slash_but_not_the_api():
    reordered = ProvisionRequest(filters=BASE.filters, image="img:1", onstart="echo hi", env=BASE.env[::-1])
    assert fingerprint(reordered, API + "/") == fingerprint(BASE, API)
    assert fingerprint(BASE, "http://127.0.0.1:9") != fingerprint(BASE, API)


def test_what_is_written_for_people_names_env_keys_never_their_values():
    text = describe(BASE)
    assert "img:1" in text and "TOKEN" in text and "s3cr3t" not in text
    assert "s3cr3t" not in fingerprint(BASE, API)


def entry(**parking) -> LedgerEntry:
    data = {"fingerprint": "f" * 64, "parked_at": 100.0, "expires": 1000.0, "host": "127.0.0.1", "port": 2222,
            "key_dir": "/x", "offer": {"id": 1}, "disk_gb": 20}  # fmt: skip
    data.update(parking)
    return LedgerEntry("dumont-x-1", "x", API, 0.0, 0.36, instance_id=7, state="parked", parking=data)


@pytest.mark.parametrize(
    "bad", [{"port": "ssh"}, {"port": 0}, {"fingerprint": "short"}, {"expires": None}, {"offer": 3}]
)
def test_malformed_parking_data_is_refused(bad):
    with pytest.raises(ValueError, match="malformed parking data"):
        ParkedInfo.from_entry(entry(**bad))


def test_the_cost_so_far_is_the_rate_times_the_time_parked_up_to_the_deadline():
    info = ParkedInfo.from_entry(entry())
    assert info.cost_so_far(400.0) == pytest.approx(0.36 * 300 / 3600)
    assert info.cost_so_far(5000.0) == pytest.approx(0.36 * 900 / 3600)  # nothing bills after it destroyed itself
