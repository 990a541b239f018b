"""`dumont reap --json`: what scripts read after a CI run, with ids and labels and never the key."""

from __future__ import annotations

import json

from pytest_dumont.vast.client import CreateRequest, VastClient


def test_reap_json_lists_what_it_destroyed(make_emulator, run_dumont):
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    first, second = client.search_offers({"gpu_name": {"eq": "RTX 4090"}, "rentable": {"eq": True}})[:2]
    ours = client.create_instance(first.id, CreateRequest(image="img", disk_gb=10, label="dumont-dead-1")).id
    theirs = client.create_instance(second.id, CreateRequest(image="img", disk_gb=10, label="not-ours")).id
    dry = run_dumont("reap", "--no-ledger", "--label-prefix", "dumont-", "--dry-run", "--json", env=emulator.environ())
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["would_destroy"] == [{"instance_id": ours, "label": "dumont-dead-1"}]
    done = run_dumont("reap", "--no-ledger", "--label-prefix", "dumont-", "--json", env=emulator.environ())
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True and doc["destroyed"] == [{"instance_id": ours, "label": "dumont-dead-1"}]
    assert emulator.api_key not in done.stdout + done.stderr
    assert client.show_instance(ours) is None and client.show_instance(theirs) is not None


def test_reap_json_reports_a_refused_key(make_emulator, run_dumont):
    emulator = make_emulator(ssh=False)
    done = run_dumont(
        "reap", "--no-ledger", "--label-prefix", "dumont-", "--json",
        env={"VAST_API_KEY": "reap-key-123456", "VAST_URL": emulator.url},
    )  # fmt: skip
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["ok"] is False and doc["error"]
    assert "reap-key-123456" not in done.stdout + done.stderr
