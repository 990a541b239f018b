"""The emulator's HTTP API against a real server with ``requests``: every endpoint and quirk of vast-api.md."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import paramiko
import pytest
import requests
from api_waits import DEADLINE_S, history, keypair, wait_for
from cli_recorded import cli_recorded_query

from pytest_dumont.emulator import Faults
from pytest_dumont.emulator.portmap import direct_host

SEED_OFFER = 29292839


# -- protocol quirks ------------------------------------------------------------------------------------------------


def test_every_answer_has_exactly_application_json(api):
    instance_id = api.create()
    answers = [
        api.post("/api/v0/bundles/", json={}),
        api.get(f"/api/v0/instances/{instance_id}/"),
        api.get("/api/v0/instances/"),  # 410
        api.get("/api/v0/nothing-here/"),  # 404
        requests.get(api.url + "/api/v0/users/current", timeout=10),  # 401
        api.put(f"/api/v0/asks/{SEED_OFFER}/", data="{not json"),  # 400
        api.get("/_emulator/ledger"),
    ]
    assert [r.headers["Content-Type"] for r in answers] == ["application/json"] * len(answers)
    assert [r.status_code for r in answers] == [200, 200, 410, 404, 401, 400, 200]


def test_v0_list_is_gone_with_the_exact_410_body(api):
    response = api.get("/api/v0/instances/")
    assert response.status_code == 410
    assert response.json() == {
        "success": False,
        "error": "deprecated_endpoint",
        "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.",
    }


def test_unknown_paths_and_methods_answer_json_errors(api):
    missing = api.get("/api/v0/teleport/")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = api.post("/api/v0/instances/filters/", json={})
    assert wrong_method.status_code == 405


def test_a_malformed_body_is_a_400(api):
    response = api.post("/api/v0/bundles/", data=b"[1, 2", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    not_an_object = api.post("/api/v0/bundles/", json=[1, 2])
    assert not_an_object.status_code == 400


# -- auth and rate limits -------------------------------------------------------------------------------------------


def test_the_key_is_accepted_as_bearer_or_as_api_key_query(api, emulator):
    assert requests.get(f"{api.url}/api/v0/users/current/", params={"api_key": emulator.api_key}, timeout=10).ok
    assert api.get("/api/v0/users/current").ok  # the CLI's spelling, without the trailing slash
    for headers, params in (({"Authorization": "Bearer wrong"}, {}), ({}, {"api_key": "wrong"}), ({}, {})):
        response = requests.get(f"{api.url}/api/v0/users/current/", headers=headers, params=params, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"success": False, "error": "auth_error", "msg": "Invalid user key"}


def test_gpu_names_and_controls_need_no_key(api):
    names = requests.get(f"{api.url}/api/v0/gpu_names/unique/", timeout=10).json()["gpu_names"]
    assert "RTX 4090" in names
    assert requests.get(f"{api.url}/_emulator/faults", timeout=10).ok


def test_the_bad_key_status_is_configurable(api):
    api.post("/_emulator/faults", json={"auth_status": 404})
    response = requests.get(f"{api.url}/api/v0/users/current/", headers={"Authorization": "Bearer x"}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "auth_error"


def test_the_instance_api_key_may_only_start_stop_and_destroy_its_instance(api):
    reply = api.put(f"/api/v0/asks/{SEED_OFFER}/", json={"image": "img", "disk": 20}).json()
    other = api.create(29305521)
    restricted = {"Authorization": f"Bearer {reply['instance_api_key']}"}
    own = f"{api.url}/api/v0/instances/{reply['new_contract']}/"
    assert requests.put(own, json={"state": "stopped"}, headers=restricted, timeout=10).json() == {"success": True}
    assert requests.put(own, json={"label": "x"}, headers=restricted, timeout=10).status_code == 401
    theirs = f"{api.url}/api/v0/instances/{other}/"
    assert requests.delete(theirs, json={}, headers=restricted, timeout=10).status_code == 401
    assert requests.post(f"{api.url}/api/v0/bundles/", json={}, headers=restricted, timeout=10).status_code == 401
    assert requests.delete(own, json={}, headers=restricted, timeout=10).status_code == 200


def test_a_client_faster_than_the_rate_limit_gets_429_with_retry_after(make_emulator, make_api):
    api = make_api(make_emulator(profile="manual", ssh=False, rate_limit=0.01))  # one call per 100 s
    assert api.get("/api/v0/users/current/").status_code == 200
    too_soon = api.get("/api/v0/users/current/")
    assert too_soon.status_code == 429
    assert too_soon.headers["Retry-After"] == "1"
    assert too_soon.json() == {"detail": "API requests too frequent endpoint threshold=0.01"}
    assert api.post("/api/v0/bundles/", json={}).status_code == 200, "limits are per endpoint"
    other = requests.get(f"{api.url}/api/v0/users/current/", params={"api_key": "nope"}, timeout=10)
    assert other.status_code == 401, "a bad key is refused before it is counted"


def test_injected_429_and_5xx_answers(api):
    api.post("/_emulator/faults", json={"rate_429": 1.0, "retry_after": 0})
    limited = api.get("/api/v0/users/current/")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "0"
    api.post("/_emulator/faults", json={"rate_429": 0.0, "rate_5xx": 1.0})
    statuses = {api.get("/api/v0/users/current/").status_code for _ in range(20)}
    assert statuses == {502, 503}
    assert api.get("/_emulator/ledger").ok, "controls are never faulted"


# -- offers ---------------------------------------------------------------------------------------------------------


def test_search_as_the_cli_sends_it(api):
    query = cli_recorded_query(limit=3)
    offers = api.post("/api/v0/bundles/", json=query).json()["offers"]
    assert [o["id"] for o in offers] == [SEED_OFFER, 29305521, 29310044]
    assert offers[0]["dph_total"] == pytest.approx(0.1647 + 5 * 0.15 / 720)
    underscored = api.post("/api/v0/bundles/", json={**query, "gpu_name": {"eq": "RTX_4090"}}).json()["offers"]
    assert underscored == offers


def test_the_default_market_is_realistic(api):
    offers = api.post("/api/v0/bundles/", json={"gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"eq": 1}}).json()
    prices = [o["dph_base"] for o in offers["offers"]]
    assert len(prices) >= 5
    assert min(prices) >= 0.15
    assert max(prices) <= 0.60
    verifications = {o["verification"] for o in offers["offers"]}
    assert {"verified", "unverified"} <= verifications
    assert len({o["geolocation"] for o in offers["offers"]}) >= 5
    others = api.post("/api/v0/bundles/", json={"gpu_name": {"neq": "RTX 4090"}}).json()["offers"]
    assert {"A100 SXM4", "H100 SXM", "RTX 3090"} <= {o["gpu_name"] for o in others}


def test_search_by_get_q_and_by_put_search_asks(api):
    query = {"gpu_name": {"eq": "H100 SXM"}}
    by_get = api.get("/api/v0/bundles/", params={"q": json.dumps(query)}).json()["offers"]
    by_put = api.put("/api/v0/search/asks/", json={"select_cols": ["*"], "q": query}).json()
    assert [o["gpu_name"] for o in by_get] == ["H100 SXM"]
    assert by_put["success"] is True
    assert by_put["offers"] == by_get


def test_a_search_never_returns_more_than_64(make_emulator, make_api):
    market = [
        {"id": 1000 + i, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_base": 0.2, "storage_cost": 0.1,
         "disk_space": 100, "reliability": 0.99}
        for i in range(80)
    ]  # fmt: skip
    api = make_api(make_emulator(profile="manual", ssh=False, market=market))
    assert len(api.post("/api/v0/bundles/", json={"limit": 500}).json()["offers"]) == 64


def test_a_bad_filter_value_is_a_400_invalid_args(api):
    response = api.post("/api/v0/bundles/", json={"num_gpus": {"gte": "many"}})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_args"


# -- instance lifecycle ---------------------------------------------------------------------------------------------


def test_create_then_null_loading_running_on_advance(api):
    instance_id = api.create(label="seed-run", env={"HF_TOKEN": "x", "-p 8080:8080": "1"})
    row = api.row(instance_id)
    assert row["actual_status"] is None
    assert (row["intended_status"], row["cur_state"]) == ("running", "running")
    assert isinstance(row["start_date"], float)
    assert row["extra_env"] == [["HF_TOKEN", "x"]]
    assert row["ports"] is None
    assert row["label"] == "seed-run"
    assert row["image_runtype"] == "ssh_direc ssh_proxy"
    api.advance(instance_id)
    assert api.row(instance_id)["actual_status"] == "loading"
    api.advance(instance_id)
    row = api.row(instance_id)
    assert row["actual_status"] == "running"
    assert set(row["ports"]) == {"22/tcp", "8080/tcp"}
    assert row["ports"]["22/tcp"][0]["HostPort"] != str(row["ssh_port"])  # direct is not the proxy
    assert row["dph_total"] == pytest.approx(0.1647 + 20 * 0.15 / 720)


def test_the_fast_profile_boots_by_itself(make_emulator, make_api):
    api = make_api(make_emulator(profile="fast", ssh=False))
    instance_id = api.create()
    wait_for(lambda: api.row(instance_id)["actual_status"] == "running", "running")
    entry = wait_for(lambda: (e := history(api, instance_id))["ssh_up"] and e, "SSH up")
    assert entry["created_at"] < entry["loading_at"] < entry["running_at"] < entry["ssh_up_at"]
    seen = [t["actual_status"] for t in entry["transitions"]]
    assert seen[:3] == [None, "loading", "running"]


def test_destroy_answers_success_then_null_then_404(api):
    instance_id = api.create()
    assert api.delete(f"/api/v0/instances/{instance_id}/").json() == {"success": True}
    assert api.get(f"/api/v0/instances/{instance_id}/?owner=me").json() == {"instances": None}
    again = api.delete(f"/api/v0/instances/{instance_id}/")
    assert again.status_code == 404
    assert again.json() == {"success": False, "error": "no_such_instance", "msg": "Instance not found."}
    assert api.get("/api/v0/instances/424242/").json() == {"instances": None}
    assert api.delete("/api/v0/instances/424242/").status_code == 404


def test_create_refuses_bad_bodies_with_invalid_args(api):
    bad_bodies = [
        {"image": None, "disk": 20},
        {"image": "img", "disk": "lots"},
        {"image": "img", "disk": 0},
        {"image": "img", "disk": 20, "env": ["A=1"]},
        {"image": "img", "disk": 20, "env": {"-p 99999:99999": "1"}},
        {"image": "img", "disk": 20, "label": "x" * 300},
        {"image": "img", "disk": 20, "runtype": "telepathy"},
        {"image": "img", "disk": 5000},  # more than the offer has
    ]
    for body in bad_bodies:
        response = api.put(f"/api/v0/asks/{SEED_OFFER}/", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_args"
    assert api.get("/_emulator/instances").json()["instances"] == []


def test_a_rented_offer_is_hidden_and_cannot_be_rented_twice(api):
    api.create(SEED_OFFER)
    default = {"rentable": {"eq": True}, "id": {"eq": SEED_OFFER}}
    assert api.post("/api/v0/bundles/", json=default).json()["offers"] == []
    response = api.put(f"/api/v0/asks/{SEED_OFFER}/", json={"image": "img", "disk": 20})
    assert response.status_code == 404
    assert response.json()["error"] == "no_such_ask"


def test_stop_start_and_label(api, emulator):
    instance_id = api.create()
    api.advance(instance_id, 3)
    path = f"/api/v0/instances/{instance_id}/"
    assert api.put(path, json={"state": "stopped"}).json() == {"success": True}
    row = api.row(instance_id)
    assert (row["actual_status"], row["intended_status"], row["cur_state"]) == ("exited", "stopped", "stopped")
    assert row["ports"] is None
    assert not emulator.world.host(instance_id).is_open
    assert api.put(path, json={"state": "running"}).json() == {"success": True}
    assert api.row(instance_id)["actual_status"] == "loading"
    api.advance(instance_id, 2)
    assert api.row(instance_id)["actual_status"] == "running"
    assert emulator.world.host(instance_id).is_open
    assert api.put(path, json={"label": "renamed"}).json() == {"success": True}
    assert api.row(instance_id)["label"] == "renamed"
    too_long = api.put(path, json={"label": "x" * 1025})
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "label_too_long"
    assert api.put(path, json={"state": "paused"}).status_code == 400
    assert api.put("/api/v0/instances/1/", json={"state": "stopped"}).status_code == 404


def test_bulk_stop_and_destroy(api):
    first, second = api.create(SEED_OFFER), api.create(29305521)
    assert api.put("/api/v0/instances/", json={"state": "stopped", "ids": [first, second]}).ok
    assert {api.row(i)["intended_status"] for i in (first, second)} == {"stopped"}
    response = api.request("DELETE", "/api/v0/instances/", json={"instance_ids": [first, second]})
    assert response.json() == {"success": True}
    assert api.row(first) is None
    assert api.row(second) is None


def test_reboot_shows_rebooting_then_goes_through_loading(api):
    instance_id = api.create()
    api.advance(instance_id, 3)
    assert api.put(f"/api/v0/instances/reboot/{instance_id}/", json={}).json() == {"success": True}
    assert api.row(instance_id)["actual_status"] == "rebooting"
    api.advance(instance_id)
    assert api.row(instance_id)["actual_status"] == "loading"
    api.advance(instance_id)
    assert api.row(instance_id)["actual_status"] == "running"
    api.put(f"/api/v0/instances/{instance_id}/", json={"state": "stopped"})
    refused = api.put(f"/api/v0/instances/reboot/{instance_id}/", json={})
    assert refused.status_code == 200
    assert refused.json()["success"] is False


# -- the v1 list ----------------------------------------------------------------------------------------------------


def test_v1_list_pages_filters_and_counts(api):
    ids = [api.create(o, label="batch" if o != SEED_OFFER else None) for o in (SEED_OFFER, 29305521, 29310044)]
    api.advance(ids[1])
    params = {"select_filters": "{}", "order_by": json.dumps([{"col": "id", "dir": "asc"}]), "limit": 2}
    first = api.get("/api/v1/instances/", params=params).json()
    assert first["success"] is True
    assert [r["id"] for r in first["instances"]] == ids[:2]
    assert (first["total_instances"], first["instances_found"]) == (3, 3)
    assert first["label_counts"] == {"": 1, "batch": 2}
    rest = api.get("/api/v1/instances/", params={**params, "after_token": first["next_token"]}).json()
    assert [r["id"] for r in rest["instances"]] == ids[2:]
    assert rest["next_token"] is None
    assert all(isinstance(r["start_date"], float) and isinstance(r["extra_env"], list) for r in rest["instances"])
    loading = api.get("/api/v1/instances/", params={"select_filters": '{"actual_status": {"in": ["loading"]}}'})
    assert [r["id"] for r in loading.json()["instances"]] == [ids[1]]
    computed = api.get("/api/v1/instances/", params={"select_filters": '{"dph_total": {"lt": 1}}'})
    assert computed.status_code == 400
    assert computed.json()["error"] == "invalid_request"
    assert api.get("/api/v1/instances/", params={"after_token": "garbage"}).json()["error"] == "invalid_token"


def test_instance_filters_list_distinct_combinations(api):
    api.create(SEED_OFFER)
    api.create(29305521)
    filters = api.get("/api/v0/instances/filters/").json()["filters"]
    assert filters == [{"actual_status": None, "verification": "verified", "gpu_name": "RTX 4090"}]


# -- SSH keys and the user ------------------------------------------------------------------------------------------


def test_account_and_instance_ssh_keys(api, emulator):
    _, account_key = keypair()
    _, attached_key = keypair()
    added = api.post("/api/v0/ssh/", json={"ssh_key": account_key}).json()
    assert added["success"] is True
    assert added["key"]["public_key"] == account_key
    assert [k["public_key"] for k in api.get("/api/v0/ssh/").json()] == [account_key]
    instance_id = api.create()
    reply = api.post(f"/api/v0/instances/{instance_id}/ssh/", json={"ssh_key": attached_key}).json()
    assert reply["success"] is True
    listed = json.loads(api.get(f"/api/v0/instances/{instance_id}/ssh/").json()["ssh_keys"])
    assert [k["public_key"] for k in listed] == [account_key, attached_key]
    assert emulator.world.host(instance_id).keys == [account_key, attached_key]
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----"
    for bad in (private, "not a key", None):
        assert api.post(f"/api/v0/instances/{instance_id}/ssh/", json={"ssh_key": bad}).status_code == 400
    detached = api.delete(f"/api/v0/instances/{instance_id}/ssh/2/").json()
    assert detached == {"success": True, "msg": "SSH key removed from instance."}
    assert api.delete(f"/api/v0/ssh/{added['key']['id']}/").ok
    assert api.get("/api/v0/ssh/").json() == []


def test_current_user_has_credit_and_no_api_key(api):
    user = api.get("/api/v0/users/current").json()
    assert user["credit"] == 100.0
    assert user["balance"] == 0.0
    assert "api_key" not in user
    assert user["host_agreement_accepted"] is False


# -- emulator controls ----------------------------------------------------------------------------------------------


def test_control_instances_lists_every_instance_ever_and_the_ledger_adds_up(api):
    kept, gone = api.create(SEED_OFFER), api.create(29305521)
    api.advance(kept, 2)
    api.delete(f"/api/v0/instances/{gone}/")
    entries = {e["id"]: e for e in api.get("/_emulator/instances").json()["instances"]}
    assert set(entries) == {kept, gone}
    assert (entries[kept]["destroyed"], entries[gone]["destroyed"]) == (False, True)
    assert entries[kept]["status"] == "running"
    assert entries[gone]["destroyed_at"] >= entries[gone]["created_at"]
    ledger = api.get("/_emulator/ledger").json()
    assert ledger["live"] == 1
    assert ledger["total_cost"] == pytest.approx(sum(e["cost"] for e in ledger["instances"]))
    assert ledger["total_cost"] > 0


def test_reset_destroys_everything_and_restores_market_and_faults(api, emulator):
    instance_id = api.create()
    api.post("/_emulator/faults", json={"create_faults": ["offer_taken"]})
    assert api.put("/api/v0/asks/29305521/", json={"image": "img", "disk": 20}).status_code == 404
    assert api.post("/_emulator/reset").json() == {"success": True}
    assert api.row(instance_id) is None
    assert api.get("/_emulator/instances").json()["instances"] == []
    assert api.get("/_emulator/faults").json()["create_faults"] == []
    assert api.create(29305521) > 0, "the taken offer is back"


def test_faults_are_read_and_set_at_run_time(api):
    assert api.get("/_emulator/faults").json() == Faults().to_dict()
    updated = api.post("/_emulator/faults", json={"create_faults": ["never_boots", "exits"], "retry_after": 2})
    assert updated.json()["create_faults"] == ["never_boots", "exits"]
    assert api.post("/_emulator/faults", json={"rate_429": 7}).status_code == 400
    assert api.post("/_emulator/faults", json={"create_faults": ["gremlins"]}).status_code == 400
    stuck, crashed = api.create(SEED_OFFER), api.create(29305521)
    api.advance(stuck)
    api.advance(crashed, 2)
    assert api.row(stuck)["status_msg"].endswith("Waiting")
    assert api.post(f"/_emulator/instances/{stuck}/advance").status_code == 409
    assert api.row(crashed)["actual_status"] == "exited"
    assert "OCI runtime create failed" in api.row(crashed)["status_msg"]


def test_profile_changes_apply_to_instances_created_after(api):
    assert api.get("/_emulator/profile").json() == {"profile": "manual", "time_factor": 1.0}
    before = api.create(SEED_OFFER)
    assert api.post("/_emulator/profile", json={"profile": "fast", "time_factor": 0.5}).ok
    after = api.create(29305521)
    wait_for(lambda: api.row(after)["actual_status"] == "running", "the fast instance to run")
    assert api.row(before)["actual_status"] is None
    assert api.post("/_emulator/profile", json={"profile": "warp"}).status_code == 400
    assert api.post("/_emulator/profile", json={"time_factor": 0}).status_code == 400


def test_forced_status_and_gpu_utilization(api):
    instance_id = api.create()
    forced = api.post(f"/_emulator/instances/{instance_id}/status", json={"actual_status": "offline"})
    assert forced.json() == {"success": True}
    assert api.row(instance_id)["actual_status"] == "offline"
    api.post(f"/_emulator/instances/{instance_id}/status", json={"actual_status": "running", "status_msg": "ok"})
    assert api.post(f"/_emulator/instances/{instance_id}/gpu_utilization", json={"percent": 87}).ok
    assert api.row(instance_id)["gpu_util"] == 87.0
    assert api.post(f"/_emulator/instances/{instance_id}/gpu_utilization", json={"percent": 101}).status_code == 400
    assert api.post(f"/_emulator/instances/{instance_id}/status", json={}).status_code == 400


# -- standalone -----------------------------------------------------------------------------------------------------


def test_standalone_prints_url_and_key_serves_and_exits_cleanly_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "pytest_dumont.emulator", "--port", "0", "--api-key", "standalone-key"]
    proc = subprocess.Popen(
        [*argv, "--profile", "manual", "--no-ssh", "--quiet"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("pytest-dumont emulator listening on http://127.0.0.1:")
        url = first.split()[-1]
        assert proc.stdout.readline() == "API key: standalone-key\n"
        assert proc.stdout.readline().startswith("profile: manual")
        assert f"VAST_URL={url} VAST_API_KEY=standalone-key" in proc.stdout.readline()
        auth = {"Authorization": "Bearer standalone-key"}
        created = requests.put(
            f"{url}/api/v0/asks/{SEED_OFFER}/", json={"image": "i", "disk": 20}, headers=auth, timeout=10
        )
        assert created.json()["success"] is True
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out.rstrip().endswith("stopped")


def test_standalone_bad_flags_are_a_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "pytest_dumont.emulator", "--profile", "warp"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "usage:" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "pytest_dumont.emulator", "--market", "/nonexistent/market.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "cannot read market file /nonexistent/market.json" in missing.stderr


# -- end to end with real SSH ---------------------------------------------------------------------------------------


def test_create_boot_ssh_nvidia_smi_then_destroy_refuses(make_emulator, make_api):
    emulator = make_emulator(profile="fast")  # real SSH servers
    api = make_api(emulator)
    account_private, account_public = keypair()
    attached_private, attached_public = keypair()
    assert api.post("/api/v0/ssh/", json={"ssh_key": account_public}).ok
    instance_id = api.create(SEED_OFFER)
    assert api.post(f"/api/v0/instances/{instance_id}/ssh/", json={"ssh_key": attached_public}).ok
    wait_for(lambda: history(api, instance_id)["ssh_up"], "SSH up")
    row = api.row(instance_id)
    # Two endpoints, as on Vast: the proxy (ssh_host:ssh_port) and the direct one (public_ipaddr + ports["22/tcp"]).
    direct = (row["public_ipaddr"], int(row["ports"]["22/tcp"][0]["HostPort"]))
    proxy = (row["ssh_host"], row["ssh_port"])
    assert proxy[0] == "127.0.0.1"
    assert direct[0] == direct_host() and direct != proxy
    query = "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader"
    for key, (host, port) in ((account_private, direct), (attached_private, proxy), (account_private, proxy)):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - a throwaway local server
        client.connect(host, port=port, username="root", pkey=key, allow_agent=False, look_for_keys=False)
        try:
            _, stdout, _ = client.exec_command(f"{query}; echo $CONTAINER_ID $VAST_CONTAINERLABEL")
            assert stdout.read().decode().splitlines() == [
                "NVIDIA GeForce RTX 4090, 580.95.05, 24564 MiB",
                f"{instance_id} C.{instance_id}",
            ]
        finally:
            client.close()
    assert api.delete(f"/api/v0/instances/{instance_id}/").json() == {"success": True}
    for endpoint in (direct, proxy):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(endpoint, timeout=10).close()
    assert api.get(f"/api/v0/instances/{instance_id}/").json() == {"instances": None}


def test_stop_destroys_live_instances_removes_sandboxes_and_is_idempotent(make_emulator, make_api, tmp_path):
    emulator = make_emulator(profile="manual", workdir=tmp_path)
    api = make_api(emulator)
    instance_id = api.create()
    api.advance(instance_id, 3)
    row = api.row(instance_id)
    direct = (row["public_ipaddr"], int(row["ports"]["22/tcp"][0]["HostPort"]))
    socket.create_connection(direct, timeout=10).close()
    assert (tmp_path / f"C.{instance_id}" / "workspace").is_dir()
    emulator.stop()
    emulator.stop()
    assert emulator.world.live_ids() == []
    assert emulator.world.history()[0]["destroyed"] is True
    assert not (tmp_path / f"C.{instance_id}").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(direct, timeout=10).close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api.url}/_emulator/", timeout=10)


def test_request_log_never_prints_an_api_key_from_the_query(make_emulator, capfd):
    emulator = make_emulator(profile="manual", ssh=False)
    emulator.set_log_requests(True)
    answer = requests.get(f"{emulator.url}/api/v0/users/current/?api_key={emulator.api_key}", timeout=10)
    assert answer.status_code == 200
    emulator.set_log_requests(False)
    logged = capfd.readouterr().err
    assert "/api/v0/users/current/?api_key=***" in logged
    assert emulator.api_key not in logged
