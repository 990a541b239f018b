"""The on-instance dead-man switch: real scripts in real emulator sandboxes, destroying through the restricted key."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from polling import wait_for

from pytest_dumont.safety.deadman import API_URL_ENV, ONSTART_LIMIT, DeadmanSwitch, Renewer, without_switch
from pytest_dumont.vast.client import CreateRequest, VastClient


def rent(client: VastClient, switch: DeadmanSwitch | None, label: str = "dumont-dm-1") -> tuple[int, str]:
    offers = client.search_offers({"gpu_name": {"eq": "RTX 4090"}, "rentable": {"eq": True}})
    request = CreateRequest(
        image="img",
        disk_gb=10,
        label=label,
        onstart=switch.onstart(None) if switch else None,
        env=switch.env() if switch else {},
    )
    created = client.create_instance(offers[0].id, request)
    assert created.instance_api_key is not None
    return created.id, created.instance_api_key


@pytest.mark.parametrize("shell", ["sh", "dash"])
def test_the_script_is_posix_sh_short_and_names_the_key_only_by_variable(shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    switch = DeadmanSwitch(ttl_s=3600, api_url="http://127.0.0.1:1")
    script = switch.onstart("echo user onstart\n")
    assert subprocess.run([shell, "-n", "-c", script], check=False).returncode == 0
    assert '"$CONTAINER_API_KEY"' in script
    assert "Authorization" not in script  # cassettes echo the script; the secret checks flag the word
    assert script.endswith("echo user onstart\n")
    assert len(script) < ONSTART_LIMIT // 2
    assert switch.env() == {API_URL_ENV: "http://127.0.0.1:1"}
    assert DeadmanSwitch(60).env() == {}  # the real API is the script's default


def test_cassettes_match_a_create_whatever_the_switch():
    body = {"onstart": DeadmanSwitch(60).onstart("nvidia-smi\n"), "env": {API_URL_ENV: "http://x", "A": "1"}}
    assert without_switch(body) == {"onstart": "nvidia-smi\n", "env": {"A": "1"}}
    assert without_switch({"onstart": DeadmanSwitch(5).onstart(None), "env": {}})["onstart"] is None


def test_an_instance_destroys_itself_when_not_renewed(make_emulator):
    emulator = make_emulator()
    client = VastClient(emulator.url, emulator.api_key)
    switch = DeadmanSwitch(ttl_s=1, api_url=emulator.url)
    instance_id, key = rent(client, switch)
    untouched, _ = rent(client, None, label="dumont-dm-2")
    wait_for(lambda: instance_id not in emulator.world.live_ids(), timeout=30, what="the switch to fire")
    (row,) = [h for h in emulator.world.history() if h["id"] == instance_id]
    assert row["destroyed"] and row["running_at"] is not None
    assert emulator.world.live_ids() == [untouched]  # the restricted key destroyed its own instance only
    assert key not in switch.onstart(None)  # the script reads it from the container's environment


def test_renewal_keeps_an_instance_past_its_first_deadline(make_emulator, tmp_path):
    from pytest_dumont.ssh.connect import SSHTarget, connect, run_checked
    from pytest_dumont.ssh.keys import SessionKey

    emulator = make_emulator()
    client = VastClient(emulator.url, emulator.api_key)
    switch = DeadmanSwitch(ttl_s=2, api_url=emulator.url)
    session_key = SessionKey.generate(tmp_path / "key", comment="dm")
    instance_id, _ = rent(client, switch)
    client.attach_ssh_key(instance_id, session_key.public_openssh)
    row = wait_for(lambda: emulator.world.history()[0]["ssh_up"] and client.show_instance(instance_id), what="SSH")
    known_hosts = tmp_path / "known_hosts"

    class Record:  # what the renewer reads of a ledger record
        live = True
        ssh_address = row.ssh_address()

    def run(record: Record, command: str) -> None:
        conn = connect(SSHTarget(*record.ssh_address), session_key, known_hosts)
        try:
            run_checked(conn, command)
        finally:
            conn.close()

    renewer = Renewer(switch, lambda: [Record()], run)
    conn = connect(SSHTarget(*row.ssh_address()), session_key, known_hosts)
    first = int(run_checked(conn, "cat ~/.dumont-deadline").stdout)
    renewer.start()
    try:
        # Until the instance's clock is well past the first deadline (and the loop's next wake), it must live on.
        wait_for(lambda: int(run_checked(conn, "date +%s").stdout) >= first + 2, timeout=30, what="the first TTL")
        assert instance_id in emulator.world.live_ids()
        assert int(run_checked(conn, "cat ~/.dumont-deadline").stdout) > first
        assert renewer.renewals >= 2 and not renewer.problems
    finally:
        renewer.stop()
        conn.close()
    wait_for(lambda: instance_id not in emulator.world.live_ids(), timeout=30, what="the switch once renewal stops")


@pytest.mark.parametrize("tool", ["curl", "python3", "wget"])
def test_each_http_client_an_image_may_have_can_destroy(tool, make_emulator, tmp_path):
    real = sys.executable if tool == "python3" else shutil.which(tool)
    if real is None:
        pytest.skip(f"{tool} is not installed")
    emulator = make_emulator(ssh=False)
    client = VastClient(emulator.url, emulator.api_key)
    instance_id, key = rent(client, None)
    bin_dir = tmp_path / "bin"  # only what the script needs, and the one client under test
    bin_dir.mkdir()
    for name in ("sh", "date", "sleep", "cat"):
        (bin_dir / name).symlink_to(shutil.which(name) or f"/bin/{name}")
    (bin_dir / tool).symlink_to(real)
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "CONTAINER_ID": str(instance_id),
        "CONTAINER_API_KEY": key,
        API_URL_ENV: emulator.url,
    }
    script = DeadmanSwitch(ttl_s=1).script()
    proc = subprocess.Popen([str(bin_dir / "sh"), "-c", script], env=env, start_new_session=True)
    try:
        wait_for(lambda: instance_id not in emulator.world.live_ids(), timeout=30, what=f"{tool} to destroy")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log = Path(tmp_path / "dumont-deadman.log").read_text()
    assert f"destroying {instance_id}" in log
    assert key not in log


def test_a_session_arms_the_switch_and_renews_it_past_its_ttl(pytester):
    pytester.makepyfile("""
        import time

        def test_outlives_the_ttl(ssh_session):
            first = int(ssh_session.run("cat ~/.dumont-deadline", hide=True).stdout)
            give_up = time.monotonic() + 30
            while int(ssh_session.run("date +%s", hide=True).stdout) < first + 2:
                assert time.monotonic() < give_up, "the instance's clock never passed the first deadline"
                time.sleep(0.1)  # polling the instance's clock, which the switch reads
            assert int(ssh_session.run("cat ~/.dumont-deadline", hide=True).stdout) > first
    """)
    result = pytester.runpytest_subprocess("--dumont-mode=emulator", "--dumont-deadman-ttl=0.04", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert "DUMONT WARNING" not in result.stdout.str()


def test_a_session_without_the_switch_sends_no_onstart(pytester):
    pytester.makepyfile("""
        def test_no_switch(ssh_session):
            assert ssh_session.run("test -e ~/.dumont-deadline", warn=True, hide=True).exited == 1
    """)
    result = pytester.runpytest_subprocess("--dumont-mode=emulator", "--dumont-deadman-ttl=0", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
