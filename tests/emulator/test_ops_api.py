"""Instance logs, execute, snapshots, charges and invoices over real HTTP, as CLI 1.9.1 sends them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from sandbox_waits import wait_until

DEADLINE_S = 30.0


def fetch(url: str) -> requests.Response:
    """The client GETs a result_url with no key, as it would an object store link."""
    return requests.get(url, timeout=30)


def logs(api: Any, instance_id: int, **body: Any) -> str:
    reply = api.put(f"/api/v0/instances/request_logs/{instance_id}/", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["success"] is True
    text = fetch(reply.json()["result_url"])
    assert text.status_code == 200
    assert text.headers["Content-Type"].startswith("text/plain")
    return text.text


@pytest.fixture
def booted(make_emulator: Callable[..., Any], make_api: Callable[[Any], Any]) -> tuple[Any, int]:
    """A fast emulator with sandboxes and one running instance whose onstart printed and wrote files."""
    api = make_api(make_emulator(profile="fast"))
    # The files first: once "needle" shows in the logs, they are there for the tests (a busy machine showed the log
    # line before mkdir had run).
    onstart = "mkdir -p /workspace/data; echo 12345 > /workspace/data/f.txt; echo first line; echo needle here"
    instance_id = api.create(onstart=onstart, runtype="ssh_proxy")
    assert wait_until(lambda: "needle" in logs(api, instance_id), DEADLINE_S), "the onstart output never showed"
    return api, instance_id


def test_container_logs_are_what_the_onstart_printed_filtered_and_tailed(booted):
    api, instance_id = booted
    assert logs(api, instance_id) == "first line\nneedle here\n"
    assert logs(api, instance_id, tail="1") == "needle here\n"
    assert logs(api, instance_id, filter="needle") == "needle here\n"
    assert logs(api, instance_id, filter="^first", tail="5") == "first line\n"


def test_daemon_logs_are_the_instances_transitions(booted):
    api, instance_id = booted
    daemon = logs(api, instance_id, daemon_logs="true")
    assert "loading actual_status=loading" in daemon
    assert "running actual_status=running" in daemon


def test_execute_runs_ls_du_rm_in_the_instance_and_nothing_else(booted):
    api, instance_id = booted

    def execute(command: str) -> requests.Response:
        return api.put(f"/api/v0/instances/command/{instance_id}/", json={"command": command})

    listed = execute("ls data")
    assert listed.status_code == 200, listed.text
    assert set(listed.json()) == {"success", "result_url", "writeable_path"}
    assert fetch(listed.json()["result_url"]).text == "f.txt\n"
    assert execute("rm data/f.txt").status_code == 200
    assert fetch(execute("ls data").json()["result_url"]).text == ""
    for refused in ("cat /etc/passwd", "ls; id", "ls $(id)", "rm -r ../..", ""):
        reply = execute(refused)
        assert reply.status_code == 400, refused
        assert reply.json()["error"] == "invalid_args"


def test_a_result_url_needs_no_key_and_an_unknown_one_is_404(booted):
    api, instance_id = booted
    url = api.put(f"/api/v0/instances/request_logs/{instance_id}/", json={}).json()["result_url"]
    assert url.startswith(api.url + "/_emulator/results/")
    assert fetch(url).status_code == 200
    assert fetch(api.url + "/_emulator/results/1").status_code == 404


def test_logs_execute_and_snapshot_of_a_destroyed_instance_are_404(api):
    instance_id = api.create()
    assert api.delete(f"/api/v0/instances/{instance_id}/").status_code == 200
    for method, path in (
        ("PUT", f"/api/v0/instances/request_logs/{instance_id}/"),
        ("PUT", f"/api/v0/instances/command/{instance_id}/"),
        ("POST", f"/api/v0/instances/take_snapshot/{instance_id}/"),
    ):
        reply = api.request(method, path, json={"command": "ls", "personal_repo": "me/x"})
        assert (reply.status_code, reply.json()["error"]) == (404, "no_such_instance"), path


def test_execute_needs_the_sandboxes(api):
    instance_id = api.create()
    reply = api.put(f"/api/v0/instances/command/{instance_id}/", json={"command": "ls"})
    assert (reply.status_code, reply.json()["error"]) == (400, "not_supported")


def test_a_snapshot_request_is_recorded_without_the_password(api):
    instance_id = api.create()
    body = {
        "id": str(instance_id), "container_registry": "docker.io", "personal_repo": "me/snap",
        "docker_login_user": "me", "docker_login_pass": "hunter2-secret", "pause": "true",
    }  # fmt: skip
    reply = api.post(f"/api/v0/instances/take_snapshot/{instance_id}/", json=body)
    assert reply.json() == {"success": True, "msg": "Snapshot request sent."}
    recorded = api.get("/_emulator/snapshots/").json()["snapshots"]
    assert [(s["instance_id"], s["personal_repo"], s["pause"]) for s in recorded] == [(instance_id, "me/snap", True)]
    assert "hunter2-secret" not in json.dumps(recorded)
    missing = api.post(f"/api/v0/instances/take_snapshot/{instance_id}/", json={"id": instance_id})
    assert missing.status_code == 400


def _charges(api: Any, **query: Any) -> Any:
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    reply = api.get("/api/v0/charges/", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_charges_come_from_the_ledger_per_instance_with_gpu_and_disk_items(api):
    first, second = api.create(), api.create(29305521)
    api.advance(first, 2)  # running: the GPU clock turns
    now = time.time()
    page = _charges(api, select_filters={"day": {"gte": int(now) - 3600, "lte": int(now) + 3600}}, limit=20)
    assert (page["success"], page["count"], page["total"], page["next_token"]) == (True, 2, 2, None)
    by_source = {r["source"]: r for r in page["results"]}
    assert set(by_source) == {f"instance-{first}", f"instance-{second}"}
    ledger = {e["id"]: e for e in api.get("/_emulator/ledger/").json()["instances"]}
    for instance_id in (first, second):
        row = by_source[f"instance-{instance_id}"]
        assert row["type"] == "instance"
        assert [i["type"] for i in row["items"]] == ["gpu", "disk"]
        assert row["amount"] == pytest.approx(sum(i["amount"] for i in row["items"]), abs=2e-6)
        assert row["amount"] <= ledger[instance_id]["cost"] + 1e-6  # read before the ledger, which only grows
    assert by_source[f"instance-{second}"]["items"][0]["amount"] == 0  # never ran: no GPU charge


def test_charges_page_by_after_token_and_keep_to_the_window(api):
    ids = [api.create(offer) for offer in (29292839, 29305521, 29310044)]
    first = _charges(api, limit=2, latest_first="true")
    assert (first["count"], first["total"]) == (2, 3)
    rest = _charges(api, limit=2, latest_first="true", after_token=first["next_token"])
    assert (rest["count"], rest["next_token"]) == (1, None)
    seen = [r["metadata"]["instance_id"] for r in first["results"] + rest["results"]]
    assert sorted(seen) == sorted(ids)
    assert _charges(api, select_filters={"day": {"gte": 0, "lte": 1000}})["total"] == 0


def test_invoices_show_the_starting_credit_and_the_legacy_view_the_charges(api):
    instance_id = api.create()
    invoices = api.get("/api/v1/invoices/", params={"select_filters": json.dumps({"when": {"gte": 0}})}).json()
    assert [(r["type"], r["amount"], r["metadata"]["invoice_id"]) for r in invoices["results"]] == [
        ("credit", -100.0, 1)
    ]
    legacy = api.get("/api/v0/users/me/invoices", params={"owner": "me", "sdate": 0, "inc_charges": "true"}).json()
    assert [r["type"] for r in legacy["invoices"]] == ["payment", "charge"]
    assert legacy["invoices"][1]["instance_id"] == instance_id
    assert set(legacy["current"]) == {"charges"}
    credits_only = api.get("/api/v0/users/me/invoices", params={"sdate": 0, "inc_charges": "false"}).json()
    assert [r["type"] for r in credits_only["invoices"]] == ["payment"]


def _copy(api: Any, src: Any, src_path: str, dst: Any, dst_path: str) -> requests.Response:
    body = {"client_id": "me", "src_id": src, "dst_id": dst, "src_path": src_path, "dst_path": dst_path}
    return api.put("/api/v0/commands/copy_direct/", json=body)


def test_copy_direct_copies_between_two_instances_as_rsync_a_does(booted):
    api, src = booted
    dst = api.create(29305521, runtype="ssh_proxy")

    def listing(instance_id: int, path: str) -> str:
        reply = api.put(f"/api/v0/instances/command/{instance_id}/", json={"command": f"ls -R {path}"})
        assert reply.status_code == 200, reply.text
        return fetch(reply.json()["result_url"]).text

    assert wait_until(lambda: api.row(dst)["actual_status"] == "running", DEADLINE_S)
    reply = _copy(api, f"C.{src}", "/workspace/data", str(dst), "/workspace/")
    assert reply.status_code == 200, reply.text
    assert reply.json()["success"] is True
    assert "f.txt" in listing(dst, "data")  # the directory itself went in
    assert _copy(api, src, "/workspace/data/", dst, "/workspace/flat/").status_code == 200
    assert listing(dst, "flat") == "flat:\nf.txt\n"  # a trailing slash copies the contents
    assert _copy(api, src, "/workspace/data/f.txt", dst, "/workspace/renamed.txt").status_code == 200
    assert "renamed.txt" in listing(dst, ".")


@pytest.mark.parametrize(
    ("src", "src_path", "dst_path", "status", "error"),
    [
        ("V.12", "/workspace/", "/workspace/", 400, "not_supported"),
        ("s3.101", "/workspace/", "/workspace/", 400, "not_supported"),
        (None, "/workspace/../../../etc/", "/workspace/", 400, "invalid_args"),
        (None, "/workspace/missing", "/workspace/", 400, "invalid_args"),
        (None, "/workspace/", "/../../x", 400, "invalid_args"),
    ],
)
def test_copy_direct_refuses_what_it_does_not_emulate_or_what_leaves_the_instance(
    booted, src, src_path, dst_path, status, error
):
    api, instance_id = booted
    reply = _copy(api, src or instance_id, src_path, instance_id, dst_path)
    assert (reply.status_code, reply.json()["error"]) == (status, error)


def test_reset_forgets_snapshot_requests_and_result_texts(api):
    instance_id = api.create()
    api.post(f"/api/v0/instances/take_snapshot/{instance_id}/", json={"personal_repo": "me/x"})
    url = api.put(f"/api/v0/instances/request_logs/{instance_id}/", json={}).json()["result_url"]
    assert api.get("/_emulator/snapshots/").json()["snapshots"]
    assert fetch(url).status_code == 200
    assert api.post("/_emulator/reset").status_code == 200
    assert api.get("/_emulator/snapshots/").json()["snapshots"] == []
    assert fetch(url).status_code == 404
