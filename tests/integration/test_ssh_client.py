"""The SSH client against real asyncssh servers on loopback: hermetic, fast-configured, trust on first use, patient."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import invoke
import invoke.runners
import paramiko
import pytest

from pytest_dumont import errors
from pytest_dumont.clock import ManualClock
from pytest_dumont.emulator.loop import LoopThread
from pytest_dumont.emulator.sandbox import GpuFacts, Sandbox
from pytest_dumont.emulator.sshd import InstanceSSH
from pytest_dumont.ssh.connect import (
    HostKeyChanged,
    SSHTarget,
    connect,
    forget_host_key,
    probe_passed,
    run_checked,
    wait_for_ssh,
)
from pytest_dumont.ssh.keys import SessionKey

MakeServer = Callable[..., InstanceSSH]


@pytest.fixture
def session_key(tmp_path: Path) -> SessionKey:
    return SessionKey.generate(tmp_path / "key", "dumont-test")


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "known_hosts"


@pytest.fixture
def make_server(loop_thread: LoopThread, tmp_path: Path) -> Iterator[MakeServer]:
    """Make closed instance SSH servers (each with its own host key and sandbox); all released after the test."""
    made: list[tuple[InstanceSSH, Sandbox]] = []

    def make(*, host_key: Any = None) -> InstanceSSH:
        sandbox = Sandbox(tmp_path / f"sandbox{len(made)}", GpuFacts())
        server = InstanceSSH(loop_thread, sandbox, host_key or asyncssh.generate_private_key("ssh-ed25519"))
        made.append((server, sandbox))
        return server

    yield make
    for server, sandbox in reversed(made):
        server.release()
        sandbox.cleanup()


@pytest.fixture
def server(make_server: MakeServer, session_key: SessionKey) -> InstanceSSH:
    """An open server that accepts the session key."""
    made = make_server()
    made.authorize(session_key.public_openssh)
    made.open()
    return made


@pytest.fixture
def target(server: InstanceSSH) -> SSHTarget:
    return SSHTarget("127.0.0.1", server.port)


class ActingClock(ManualClock):
    """A ManualClock that does something to the real server on its n-th sleep: deterministic, never really sleeps."""

    def __init__(self, after_sleeps: int, action: Callable[[], None]) -> None:
        super().__init__()
        self.after_sleeps = after_sleeps
        self.action = action

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.sleeps) == self.after_sleeps:
            self.action()


class PortRelay:
    """A fixed 127.0.0.1 port that relays TCP to whichever backend port it points at (like Vast's SSH proxy)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.backend: int | None = None
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def point_to(self, port: int) -> None:
        self.backend = port

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            assert self.backend is not None
            upstream = socket.create_connection(("127.0.0.1", self.backend))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def relay() -> Iterator[PortRelay]:
    made = PortRelay()
    yield made
    made.close()


# connect


def test_connect_sets_tcp_nodelay_on_the_transport_socket(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    with connect(target, session_key, known_hosts) as conn:
        assert conn.is_connected
        assert conn.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_connection_closed_or_dropped_opens_again_on_a_fresh_socket(
    server: InstanceSSH, target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    # fabric reopens by itself at the next run; it used to hand paramiko the closed socket ("Bad file descriptor").
    with connect(target, session_key, known_hosts) as conn:
        first = conn.transport.sock
        conn.close()
        assert conn.run("echo again", hide=True).stdout == "again\n"
        assert conn.transport.sock is not first
        assert conn.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        server.close()  # the server drops it (a restart, an idle timeout)
        server.open()
        assert conn.run("echo back", hide=True).stdout == "back\n"


def test_plain_run_works_under_pytest_capture(target: SSHTarget, session_key: SessionKey, known_hosts: Path) -> None:
    # No in_stream argument: pytest's captured stdin raises if read, so this passes only if connect() turned it off.
    with connect(target, session_key, known_hosts) as conn:
        result = conn.run("echo out; echo err >&2", hide=True)

    assert (result.exited, result.stdout, result.stderr) == (0, "out\n", "err\n")


def test_run_waits_on_the_exit_status_not_on_a_polling_sleep(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # invoke's own wait() sleeps input_sleep (10 ms) per poll; each sleep is latency added to every command.
    polls: list[float] = []
    real_sleep, caller = time.sleep, threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is caller:  # the emulator's threads share the time module
            polls.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(invoke.runners.time, "sleep", sleep)
    with connect(target, session_key, known_hosts) as conn:
        conn.run("sleep 0.2", hide=True)

    assert polls == []


def test_connection_is_open_when_returned(target: SSHTarget, session_key: SessionKey, known_hosts: Path) -> None:
    conn = connect(target, session_key, known_hosts)
    try:
        assert conn.transport is not None
        assert conn.transport.is_authenticated()
    finally:
        conn.close()


def test_only_the_session_key_authenticates(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path, tmp_path: Path
) -> None:
    server = make_server()
    server.authorize(SessionKey.generate(tmp_path / "other", "someone-else").public_openssh)
    server.open()

    with pytest.raises(paramiko.AuthenticationException):
        connect(SSHTarget("127.0.0.1", server.port), session_key, known_hosts)


def test_refused_connection_raises_connection_refused(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path
) -> None:
    closed = make_server()

    with pytest.raises(ConnectionRefusedError):
        connect(SSHTarget("127.0.0.1", closed.port), session_key, known_hosts)


def test_a_failed_connect_closes_its_transport_cleanly(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server()  # the session key is not authorized
    server.open()
    before = set(threading.enumerate())

    for _ in range(3):
        with pytest.raises(paramiko.AuthenticationException):
            connect(SSHTarget("127.0.0.1", server.port), session_key, known_hosts)

    transports = [t for t in set(threading.enumerate()) - before if isinstance(t, paramiko.Transport)]
    for transport in transports:
        transport.join(10)  # a bound, not a timing: the thread is already told to stop
        assert not transport.is_alive()
    # Closing the socket under a live transport makes its thread die on "Bad file descriptor" instead.
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


def test_user_ssh_and_fabric_config_are_never_read(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each of these would break the connection if it were read.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        "Host 127.0.0.1 *\n"
        "    User nobody\n"
        "    Port 1\n"
        "    ProxyCommand false\n"  # fabric would hand paramiko this instead of our socket
        "    ConnectTimeout 1\n"  # fabric refuses a timeout given both here and in connect_kwargs
        "    IdentityFile ~/.ssh/missing\n"
    )
    (home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{target.port} {SessionKey.generate(tmp_path / 'wrong', 'x').public_openssh}\n"
    )
    (home / ".fabric.json").write_text(json.dumps({"gateway": "false", "timeouts": {"connect": 1}}))
    monkeypatch.setenv("HOME", str(home))

    with connect(target, session_key, known_hosts) as conn:
        assert conn.run("echo ok", hide=True).stdout == "ok\n"
        assert conn.user == "root"


# trust on first use


def test_first_connect_records_the_host_key_in_the_session_known_hosts(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    with connect(target, session_key, known_hosts) as conn:
        presented = conn.transport.get_remote_server_key()

    assert known_hosts.read_text().splitlines() == [
        f"[127.0.0.1]:{target.port} {presented.get_name()} {presented.get_base64()}"
    ]


def test_reconnecting_to_the_same_server_is_trusted_without_a_new_entry(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    connect(target, session_key, known_hosts).close()
    recorded = known_hosts.read_text()

    with connect(target, session_key, known_hosts) as conn:
        assert conn.run("true", hide=True).exited == 0
    assert known_hosts.read_text() == recorded


def test_a_changed_host_key_on_a_known_host_port_is_refused(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path, relay: PortRelay
) -> None:
    first, second = make_server(), make_server()
    for server in (first, second):
        server.authorize(session_key.public_openssh)
        server.open()
    target = SSHTarget("127.0.0.1", relay.port)
    relay.point_to(first.port)
    with connect(target, session_key, known_hosts) as conn:
        trusted = conn.transport.get_remote_server_key().fingerprint
    relay.point_to(second.port)  # same host:port, another server behind it

    with pytest.raises(HostKeyChanged) as caught:
        connect(target, session_key, known_hosts)

    message = str(caught.value)
    assert f"[127.0.0.1]:{relay.port}" in message
    assert "changed" in message
    assert trusted in message
    assert caught.value.presented_fingerprint != trusted
    assert isinstance(caught.value, errors.DumontError)


def test_a_forgotten_host_port_is_trusted_anew(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path, relay: PortRelay
) -> None:
    first, second, elsewhere = make_server(), make_server(), make_server()
    for server in (first, second, elsewhere):
        server.authorize(session_key.public_openssh)
        server.open()
    target = SSHTarget("127.0.0.1", relay.port)
    relay.point_to(first.port)
    connect(target, session_key, known_hosts).close()
    connect(SSHTarget("127.0.0.1", elsewhere.port), session_key, known_hosts).close()
    relay.point_to(second.port)  # the old instance was destroyed; a new one got its host:port

    forget_host_key(known_hosts, target)

    with connect(target, session_key, known_hosts) as conn:
        presented = conn.transport.get_remote_server_key()
    entries = known_hosts.read_text().splitlines()
    assert f"[127.0.0.1]:{relay.port} {presented.get_name()} {presented.get_base64()}" in entries
    assert [e for e in entries if e.startswith(f"[127.0.0.1]:{relay.port} ")] == [entries[-1]]
    assert any(e.startswith(f"[127.0.0.1]:{elsewhere.port} ") for e in entries)  # other hosts stay trusted


# wait_for_ssh


def test_wait_succeeds_once_the_server_opens_after_refused_attempts(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path
) -> None:
    server = make_server()
    server.authorize(session_key.public_openssh)
    clock = ActingClock(after_sleeps=3, action=server.open)

    conn, attempts = wait_for_ssh(
        SSHTarget("127.0.0.1", server.port), session_key, known_hosts, clock=clock, deadline=60.0
    )

    with conn:
        assert conn.run("echo ready", hide=True).stdout == "ready\n"
    assert attempts == 4
    assert clock.sleeps == pytest.approx([0.05, 0.075, 0.1125])


def test_wait_delays_grow_by_half_up_to_the_cap(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path
) -> None:
    server = make_server()
    server.authorize(session_key.public_openssh)
    clock = ActingClock(after_sleeps=8, action=server.open)

    conn, attempts = wait_for_ssh(
        SSHTarget("127.0.0.1", server.port), session_key, known_hosts, clock=clock, deadline=60.0, max_delay=0.2
    )
    conn.close()

    assert attempts == 9
    assert clock.sleeps == pytest.approx([0.05, 0.075, 0.1125, 0.16875, 0.2, 0.2, 0.2, 0.2])


def test_wait_raises_ssh_not_ready_at_the_deadline_with_attempts_and_last_error(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path
) -> None:
    never_opened = make_server()
    clock = ManualClock()

    with pytest.raises(errors.SSHNotReady) as caught:
        wait_for_ssh(
            SSHTarget("127.0.0.1", never_opened.port),
            session_key,
            known_hosts,
            clock=clock,
            deadline=2.0,
            instance_id=4242,
        )

    attempts = len(clock.sleeps) + 1
    message = str(caught.value)
    assert f"127.0.0.1:{never_opened.port}" in message
    assert f"{attempts} attempts" in message
    assert "connection refused" in message
    assert caught.value.instance_id == 4242
    assert clock.now() == pytest.approx(2.0)  # the last sleep is cut to the deadline, then one last attempt
    assert "PRIVATE" not in message
    assert session_key.public_openssh.split()[1] not in message


def test_wait_retries_an_auth_failure_until_the_key_is_authorized(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path
) -> None:
    server = make_server()  # running, SSH up, but Vast has not propagated the key yet
    server.open()
    clock = ActingClock(after_sleeps=2, action=lambda: server.authorize(session_key.public_openssh))

    conn, attempts = wait_for_ssh(
        SSHTarget("127.0.0.1", server.port), session_key, known_hosts, clock=clock, deadline=60.0
    )

    conn.close()
    assert attempts == 3


def test_wait_names_the_auth_failure_when_the_key_never_arrives(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path
) -> None:
    server = make_server()
    server.open()

    with pytest.raises(errors.SSHNotReady, match="authentication failed"):
        wait_for_ssh(SSHTarget("127.0.0.1", server.port), session_key, known_hosts, clock=ManualClock(), deadline=0.5)


def test_wait_retries_a_failing_probe_and_reports_its_exit(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    with pytest.raises(errors.SSHNotReady, match=r"probe 'echo nope >&2; exit 3' exited 3: nope"):
        wait_for_ssh(
            target,
            session_key,
            known_hosts,
            clock=ManualClock(),
            deadline=0.3,
            probe="echo nope >&2; exit 3",
        )


@pytest.mark.parametrize(
    ("probe", "stdout", "exited", "passed"),
    [
        ("echo ready", "ready\n", 0, True),
        ("echo ready", "Welcome to vast.ai\nready\n", 0, True),
        ("echo ready", "", 0, False),  # a shell that runs but prints nothing is not ready
        ("echo ready", "ready\n", 1, False),
        ("nvidia-smi -L", "", 0, True),  # a custom probe only needs exit 0
        ("nvidia-smi -L", "", 9, False),
    ],
)
def test_probe_passes_on_exit_zero_and_for_the_default_probe_a_ready_line(
    probe: str, stdout: str, exited: int, passed: bool
) -> None:
    result = invoke.Result(stdout=stdout, command=probe, exited=exited)

    assert probe_passed(probe, result) is passed


def test_wait_does_not_retry_a_changed_host_key(
    make_server: MakeServer, session_key: SessionKey, known_hosts: Path, relay: PortRelay
) -> None:
    servers: list[InstanceSSH] = [make_server(), make_server()]
    for server in servers:
        server.authorize(session_key.public_openssh)
        server.open()
    target = SSHTarget("127.0.0.1", relay.port)
    relay.point_to(servers[0].port)
    connect(target, session_key, known_hosts).close()
    relay.point_to(servers[1].port)
    clock = ManualClock()

    with pytest.raises(HostKeyChanged):
        wait_for_ssh(target, session_key, known_hosts, clock=clock, deadline=60.0)
    assert clock.sleeps == []


# run_checked


def test_run_checked_returns_the_result_of_a_successful_command(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    with connect(target, session_key, known_hosts) as conn:
        assert run_checked(conn, "echo fine").stdout == "fine\n"


def test_run_checked_raises_with_exit_code_and_stderr_tail(
    target: SSHTarget, session_key: SessionKey, known_hosts: Path
) -> None:
    command = "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 7"
    with connect(target, session_key, known_hosts) as conn, pytest.raises(errors.SSHCommandError) as caught:
        run_checked(conn, command)

    error = caught.value
    assert error.exit_code == 7
    assert error.command == command
    assert "line7" in error.stderr
    assert "exited 7" in str(error)
    assert "line7" in str(error)
    assert "line3" in str(error)
    assert "line2" not in str(error)  # only the tail
