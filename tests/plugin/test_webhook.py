"""`--dumont-webhook`: real pytest runs against the emulator, posting to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pytest_dumont.reporting.webhook import SCHEMA, WebhookSender, origin


class Receiver:
    """An HTTP server that records every POST body and answers with the next status of ``statuses`` (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[bytes] = []
        self.statuses = list(statuses or [])
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(body)
                receiver.arrived.set()
                receiver.release.wait(30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token-in-path"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.release.set()
    r.server.shutdown()
    r.server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def inner_args(monkeypatch: pytest.MonkeyPatch, emulator: Any, *extra: str) -> list[str]:
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "DUMONT_JSON", "DUMONT_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    return ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "-p", "no:randomly", *extra]


GPU_TEST = "def test_gpu(ssh_session):\n    ssh_session.run('echo hi', hide=True)\n"


def test_events_arrive_in_order_with_the_documented_shape_and_no_secret(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator: Any, receiver: Receiver
):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, f"--dumont-webhook={receiver.url}"))
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*dumont webhook*not delivered*")
    events = receiver.events()
    assert [e["sequence"] for e in events] == list(range(len(events)))
    names = [e["event"] for e in events]
    assert names[0] == "instance_created" and names[-1] == "session_cost"
    assert names.index("instance_destroyed") > names.index("phase_finished")
    assert {e["schema"] for e in events} == {SCHEMA} and {e["version"] for e in events} == {1}
    assert len({e["session"] for e in events}) == 1
    created = events[0]["data"]
    assert created["offer"]["gpu_name"] == "RTX 4090" and created["label"].startswith("dumont-")
    destroyed = next(e["data"] for e in events if e["event"] == "instance_destroyed")
    assert destroyed["instance_id"] == created["instance_id"] and destroyed["billed_usd"] > 0
    cost = events[-1]["data"]
    assert cost["instances"] == 1 and cost["leaked"] == []
    raw = b"".join(receiver.bodies)
    assert vast_emulator.api_key.encode() not in raw
    assert b"127.0.0.1" not in raw  # no SSH address (the emulator's hosts are all on loopback)
    assert b"echo hi" not in raw  # a command phase is named "command", never by its text


def test_a_500_is_retried_and_the_env_variable_is_read(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator: Any, receiver: Receiver
):
    receiver.statuses = [500]
    pytester.makepyfile(GPU_TEST)
    args = inner_args(monkeypatch, vast_emulator)
    monkeypatch.setenv("DUMONT_WEBHOOK", receiver.url)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    sequences = [e["sequence"] for e in receiver.events()]
    assert sequences[:2] == [0, 0]  # the first answer was 500: the same event again
    assert sequences[1:] == list(range(len(sequences) - 1))
    result.stdout.no_fnmatch_line("*dumont webhook*not delivered*")


def test_a_receiver_that_is_down_neither_fails_the_run_nor_hides_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator: Any
):
    url = closed_port_url() + "hooks/secret-token-in-path"
    pytester.makepyfile(GPU_TEST + "\ndef test_plain():\n    pass\n")
    result = pytester.runpytest(*inner_args(monkeypatch, vast_emulator, f"--dumont-webhook={url}"))
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["dumont webhook: * event(s) not delivered to http://127.0.0.1:* (last error: ConnectionError)*unaffected"]
    )
    assert "secret-token-in-path" not in result.stdout.str()


def test_a_url_that_is_not_http_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest("--dumont-webhook=ftp://example.org/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dumont-webhook='ftp://example.org/x': must be an http:// or https:// URL*"])


def test_a_full_queue_drops_the_oldest_and_counts_it(receiver: Receiver):
    receiver.release.clear()  # the first event stays in flight until released
    sender = WebhookSender(receiver.url, queue_size=2)
    sender.post({"sequence": 0})
    assert receiver.arrived.wait(30)
    for sequence in (1, 2, 3):
        sender.post({"sequence": sequence})
    receiver.release.set()
    assert sender.finish(deadline_s=30) == 1
    assert [e["sequence"] for e in receiver.events()] == [0, 2, 3]
    assert (sender.tally.delivered, sender.tally.dropped) == (3, 1)


def test_a_4xx_is_not_retried(receiver: Receiver):
    receiver.statuses = [404]
    sender = WebhookSender(receiver.url)
    sender.post({"sequence": 0})
    sender.post({"sequence": 1})
    assert sender.finish(deadline_s=30) == 1
    assert [e["sequence"] for e in receiver.events()] == [0, 1]


def test_the_origin_hides_the_path_and_credentials():
    assert origin("https://user:pw@hooks.example.org:8443/T0/B1/xyz?token=1") == "https://hooks.example.org:8443"


def test_a_budget_that_refuses_the_rental_is_an_event(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator: Any, receiver: Receiver
):
    pytester.makepyfile(GPU_TEST)
    args = inner_args(monkeypatch, vast_emulator, f"--dumont-webhook={receiver.url}", "--dumont-budget=0.000001")
    result = pytester.runpytest(*args)
    result.assert_outcomes(errors=1)
    events = receiver.events()
    hit = next(e["data"] for e in events if e["event"] == "budget_hit")
    assert hit["nodeid"].endswith("::test_gpu") and "--dumont-budget" in hit["message"]
    assert "instance_created" not in [e["event"] for e in events]  # nothing was rented
