"""API rows become typed models that tolerate nulls and missing fields (the seed crashed on a null status)."""

from __future__ import annotations

from pytest_dumont.vast.models import Instance, Offer


def test_null_actual_status_is_unknown_not_a_crash():
    instance = Instance.from_api({"id": 7, "actual_status": None, "intended_status": "running"})
    assert instance.actual_status is None
    assert instance.status == "unknown"
    assert not instance.is_running
    assert instance.failure_reason() is None


def test_missing_fields_get_safe_defaults():
    instance = Instance.from_api({"id": "12"})
    assert instance.id == 12
    assert instance.ssh_address() is None
    assert instance.dph_total == 0.0
    offer = Offer.from_api({"id": 3, "dph_total": None, "gpu_name": None})
    assert offer.gpu_name == "unknown GPU"
    assert offer.dph_total == 0.0


def test_direct_port_preferred_over_proxy_and_hostport_is_a_string():
    row = {
        "id": 1,
        "actual_status": "running",
        "ssh_host": "ssh2.vast.ai",
        "ssh_port": 11924,
        "public_ipaddr": "203.0.113.9\n",
        "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40022"}]},
    }
    assert Instance.from_api(row).ssh_address() == ("203.0.113.9", 40022)
    row["ports"] = None  # ports only appear while running
    assert Instance.from_api(row).ssh_address() == ("ssh2.vast.ai", 11924)


def test_failure_reasons_follow_the_cli_self_test():
    assert Instance.from_api({"id": 1, "actual_status": "exited"}).failure_reason() == "status exited"
    assert Instance.from_api({"id": 1, "actual_status": "offline"}).failure_reason() == "status offline"
    loading_error = {"id": 1, "actual_status": "loading", "status_msg": "Error response from daemon: OCI runtime"}
    assert "error" in (Instance.from_api(loading_error).failure_reason() or "")
    pulling = {"id": 1, "actual_status": "loading", "status_msg": "abc123: Downloading"}
    assert Instance.from_api(pulling).failure_reason() is None


def test_offer_storage_price_uses_a_30_day_month():
    offer = Offer.from_api({"id": 1, "storage_cost": 0.149333})
    assert abs(offer.storage_dph(10) - 0.0020741) < 1e-6  # the docs' show_instance example


def test_verified_falls_back_to_verification_text():
    assert Offer.from_api({"id": 1, "verified": None, "verification": "verified"}).verified
    assert not Offer.from_api({"id": 1, "verification": "unverified"}).verified


def test_running_since_uses_the_apis_uptime_but_never_before_a_poll_that_saw_loading():
    from pytest_dumont.provisioning.provisioner import running_since

    running = Instance.from_api({"id": 1, "actual_status": "running", "uptime_mins": 0.5})
    assert running.uptime_seconds == 30.0
    assert running_since(running, now=100.0, not_running_seen_at=50.0) == 70.0
    assert running_since(running, now=100.0, not_running_seen_at=90.0) == 90.0
    unknown = Instance.from_api({"id": 1, "actual_status": "running", "uptime_mins": None})
    assert running_since(unknown, now=100.0, not_running_seen_at=90.0) == 100.0
