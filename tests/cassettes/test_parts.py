"""The parts on their own: scrubbing, the virtual clock, network blocking, in-order HTTP replay, the secret guard."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from pytest_dumont.cassettes.format import CassetteError
from pytest_dumont.cassettes.http import CassetteAdapter, HttpTape
from pytest_dumont.cassettes.network import NetworkBlocked, block_network
from pytest_dumont.cassettes.ssh import ReplayStream, Transcript, TranscriptSlot
from pytest_dumont.cassettes.virtual_clock import VirtualClock
from pytest_dumont.secrets.redact import register_secret
from pytest_dumont.secrets.scrub import Scrubber

PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def test_scrubber_removes_keys_in_headers_query_bodies_and_text():
    register_secret("registered-secret-value-123")
    scrub = Scrubber(pattern=r"tok_[a-z0-9]{6}")
    assert scrub.headers({"Authorization": "Bearer x", "Accept": "a"}) == {"Accept": "a"}
    assert scrub.url("https://h/api/v0/x/?api_key=abc&owner=me") == "https://h/api/v0/x/?owner=me"
    body = json.loads(scrub.body(json.dumps({"instance_api_key": "k" * 20, "ssh_key": "ssh-ed25519 AAAAC3Nz", "n": 1})))
    assert body == {"instance_api_key": "***", "ssh_key": "***", "n": 1}
    text = scrub.text(f"{PRIVATE} registered-secret-value-123 tok_abc123 ssh-rsa AAAAB3NzaC1yc2E user@h")
    assert "PRIVATE KEY" not in text and "registered-secret" not in text and "tok_abc123" not in text
    assert "ssh-rsa ***" in text


def test_virtual_clock_moves_only_when_told():
    clock = VirtualClock()
    clock.sleep(2.5)
    clock.advance(1.0)
    assert (clock.now(), clock.slept) == (3.5, 2.5)


def test_network_block_refuses_the_world_and_allows_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with block_network(), block_network():
        with pytest.raises(NetworkBlocked, match=r"tried to connect to 192\.0\.2\.1:22"):
            socket.create_connection(("192.0.2.1", 22), timeout=1)
        with pytest.raises(NetworkBlocked, match=r"look up the address of 'console\.vast\.ai'"):
            socket.getaddrinfo("console.vast.ai", 443)
        socket.create_connection(server.getsockname(), timeout=1).close()
    assert socket.socket.connect.__name__ == "connect"  # restored after the outermost block
    server.close()


def _tape(statuses: list[str]) -> HttpTape:
    interactions = [
        {
            "request": {"method": "GET", "uri": "http://127.0.0.1:1234/api/v0/instances/7/?owner=me", "headers": {}},
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {},
                "body": {"string": json.dumps({"instances": {"actual_status": s}})},
                "dumont_elapsed": 0.5,
            },
        }
        for s in statuses
    ]
    return HttpTape(Path("poll.yaml"), Scrubber(), interactions)


def test_identical_polls_replay_in_recorded_order_once_each_on_any_host_and_port():
    clock = VirtualClock()
    adapter = CassetteAdapter(clock, replaying=True)
    adapter.tape = _tape(["loading", "loading", "running"])
    session = requests.Session()
    session.mount("https://", adapter)
    url = "https://console.vast.ai/api/v0/instances/7/?owner=me&api_key=whatever"
    seen = [session.get(url).json()["instances"]["actual_status"] for _ in range(3)]
    assert seen == ["loading", "loading", "running"]
    assert clock.now() == 1.5
    with pytest.raises(
        CassetteError, match=r"GET /api/v0/instances/7/\?owner=me is not in cassette poll.yaml; every .* \(3 of 3"
    ):
        session.get(url)


def test_check_secrets_fails_on_a_private_key_and_passes_the_repository_cassettes(tmp_path: Path):
    leaky = tmp_path / "leak.yaml"
    leaky.write_text("stdout: |\n  " + PRIVATE.replace("\n", "\n  "))
    cmd = [sys.executable, "-m", "pytest_dumont.cli", "check-secrets"]
    found = subprocess.run([*cmd, str(tmp_path)], capture_output=True, text=True)
    assert found.returncode == 1
    assert f"{leaky}:2: private key" in found.stdout
    assert "b3BlbnNzaC1rZXk" not in found.stdout
    custom = tmp_path / "custom" / "log.txt"
    custom.parent.mkdir()
    custom.write_text("token corp-1234 in a log\n")
    plain = subprocess.run([*cmd, str(custom.parent)], capture_output=True, text=True)
    assert plain.returncode == 0
    pattern = subprocess.run([*cmd, "--pattern", "corp-[0-9]{4}", str(custom.parent)], capture_output=True, text=True)
    assert pattern.returncode == 1
    assert "log.txt:1: matches the configured pattern" in pattern.stdout
    repo = Path(__file__).resolve().parents[2]
    shipped = [repo / "cassettes", repo / "pytest_dumont" / "scenarios" / "cassettes"]
    clean = subprocess.run([*cmd, *map(str, shipped)], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    assert "file(s) clean" in clean.stdout


def _stream_slot(entry: dict[str, object], tmp_path: Path) -> tuple[TranscriptSlot, VirtualClock]:
    clock = VirtualClock()
    transcript = Transcript(tmp_path / "t.ssh.yaml", [entry])
    return TranscriptSlot(clock, Scrubber(), default=transcript), clock


def test_a_large_stream_replays_as_zero_bytes_of_its_recorded_size_in_its_recorded_time(tmp_path: Path):
    entry = {"op": "stream", "command": "tar -cf - d", "out_size": 150_000, "in_size": 0, "exited": 0,
             "stderr": "", "duration": 2.5}  # fmt: skip
    slot, clock = _stream_slot(entry, tmp_path)
    stream = ReplayStream(entry, slot)
    data = b"".join(iter(stream.recv, b""))
    assert data == bytes(150_000)
    assert stream.finish() == (0, "") and stream.seconds == 2.5 and clock.now() == 2.5


def test_a_small_stream_replays_its_bytes_and_stops_taking_input_where_the_command_did(tmp_path: Path):
    entry = {"op": "stream", "command": "tar -xf -", "out_size": 2, "out_content": "b2s=", "in_size": 6,
             "exited": 2, "stderr": "No space left on device", "duration": 0.1}  # fmt: skip
    slot, _ = _stream_slot(entry, tmp_path)
    stream = ReplayStream(entry, slot)
    assert stream.recv() == b"ok" and stream.recv() == b""
    assert stream.send(b"abc") and stream.send(b"def") and not stream.send(b"g")
    assert stream.finish() == (2, "No space left on device")


def test_a_stream_sent_other_bytes_than_recorded_is_a_cassette_error(tmp_path: Path):
    entry = {"op": "stream", "command": "tar -xf -", "out_size": 0, "in_size": 10, "exited": 0, "duration": 0.1}
    slot, _ = _stream_slot(entry, tmp_path)
    stream = ReplayStream(entry, slot)
    stream.send(b"12345")
    with pytest.raises(CassetteError, match=r"sent 5 bytes on replay but 10 when recorded in .*t.ssh.yaml"):
        stream.finish()
