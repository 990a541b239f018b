"""The client side of SSH: a hermetic, fast fabric ``Connection`` to an instance, and the wait until SSH answers.

Hermetic: only the session key authenticates (no agent, no ``~/.ssh`` keys, no password), no ``ssh_config`` or
fabric config file is read, and host keys are trusted on first use into the session's own ``known_hosts``.
Fast: the socket has TCP_NODELAY and the runner wakes on the exit status instead of polling every 10 ms.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fabric
import paramiko
from fabric.runners import Remote, RemoteShell
from invoke.exceptions import CommandTimedOut, ThreadException
from invoke.runners import Result

from pytest_dumont import errors
from pytest_dumont.clock import Clock
from pytest_dumont.errors import HostKeyChanged
from pytest_dumont.ssh.keys import SessionKey, public_fingerprint
from pytest_dumont.statefile import write_atomic
from pytest_dumont.waiting import Backoff, WaitTimedOut, poll

DEFAULT_PROBE = "echo ready"


@dataclass(frozen=True)
class SSHTarget:
    """Where an instance's SSH listens (Vast maps the container's port 22 to a public host:port)."""

    host: str
    port: int
    user: str = "root"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH and paramiko file this host under in ``known_hosts``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


class _PromptRemote(Remote):  # type: ignore[misc]  # fabric is untyped
    """fabric's Remote runner, woken by the channel's exit status instead of a 10 ms poll per command."""

    def wait(self) -> None:
        channel = self.channel
        while not (self.process_is_finished or self.has_dead_threads):
            # Still wakes every input_sleep to notice a dead IO thread, as invoke's own loop does.
            channel.status_event.wait(self.input_sleep)


class _PromptRemoteShell(_PromptRemote, RemoteShell):  # type: ignore[misc]  # fabric is untyped
    """``Connection.shell`` with the same prompt wake-up."""


# Settings every connection starts from. in_stream=False: pytest's stdin is not the remote command's stdin, and
# without it invoke starts a thread polling stdin for every command.
_RUN_DEFAULTS: dict[str, Any] = {"in_stream": False, "echo_stdin": False}


# One writer at a time for every session known_hosts file in this process.
_known_hosts_lock = threading.Lock()


class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
    """Record a host's first key into the session's ``known_hosts``; paramiko itself refuses a changed one."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _known_hosts_lock:
            self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self.known_hosts.open("a", encoding="ascii") as stream:
                stream.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


def forget_host_key(known_hosts: Path, target: SSHTarget) -> None:
    """Drop ``target``'s trusted key once its instance is destroyed: Vast may hand that host:port to the next one."""
    name = target.known_hosts_name
    with _known_hosts_lock:
        if not known_hosts.exists():
            return
        lines = known_hosts.read_text(encoding="ascii").splitlines(keepends=True)
        kept = [line for line in lines if name not in line.split(" ", 1)[0].split(",")]
        if len(kept) != len(lines):
            write_atomic(known_hosts, "".join(kept))


def session_config(**overrides: Any) -> fabric.Config:
    """A fabric Config that reads no file (no ssh_config, no fabric.yaml) and runs commands promptly."""
    data: dict[str, Any] = {
        "load_ssh_configs": False,
        "run": dict(_RUN_DEFAULTS),
        "runners": {"remote": _PromptRemote, "remote_shell": _PromptRemoteShell},
    }
    data.update(overrides)
    # lazy=True: skip /etc/fabric.* and ~/.fabric.*; an explicit empty SSHConfig: skip every ssh_config file.
    return fabric.Config(lazy=True, ssh_config=paramiko.SSHConfig(), overrides=data)


def open_socket(target: SSHTarget, timeout: float) -> socket.socket:
    """Open the TCP connection with TCP_NODELAY: without it every command pays ~40 ms of Nagle/delayed ACK."""
    sock = socket.create_connection((target.host, target.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Connection(fabric.Connection):  # type: ignore[misc]  # fabric is untyped
    """A fabric ``Connection`` that opens again on a fresh socket.

    fabric reopens a closed connection by itself at the next ``run`` (after ``close()``, or once the server dropped
    it), with the same ``connect_kwargs``: our TCP_NODELAY socket, by then closed, which paramiko fails on with
    "Bad file descriptor". Each open after the first gets a new socket to the same address.
    """

    def open(self) -> Any:
        if not self.is_connected and self.__dict__.get("_dumont_opened"):
            old = self.connect_kwargs.get("sock")
            if old is not None:
                old.close()
            timeout = self.connect_kwargs.get("timeout") or 10.0
            self.connect_kwargs["sock"] = open_socket(SSHTarget(self.host, self.port, self.user), timeout)
        result = super().open()
        object.__setattr__(self, "_dumont_opened", True)  # DataProxy turns attribute sets into config keys
        return result


def connect(target: SSHTarget, key: SessionKey, known_hosts: Path, *, timeout: float = 10.0) -> fabric.Connection:
    """Open an authenticated, hermetic, fast Connection to ``target`` with the session key only."""
    sock = open_socket(target, timeout)
    conn: fabric.Connection | None = None
    try:
        conn = _Connection(
            target.host,
            user=target.user,
            port=target.port,
            config=session_config(),
            connect_kwargs=_connect_kwargs(sock, key, timeout),
        )
        _trust_on_first_use(conn.client, known_hosts)
        conn.open()
    except paramiko.BadHostKeyException as exc:
        _abandon(conn, sock)
        raise HostKeyChanged(
            target.known_hosts_name, _fingerprint(exc.expected_key), _fingerprint(exc.key), known_hosts
        ) from None
    except BaseException:
        _abandon(conn, sock)
        raise
    return conn


def _connect_kwargs(sock: socket.socket, key: SessionKey, timeout: float) -> dict[str, Any]:
    """paramiko connect() arguments: our socket, our key, nothing looked up on this machine."""
    return {
        "sock": sock,
        "pkey": key.load_private(),
        "look_for_keys": False,
        "allow_agent": False,
        "timeout": timeout,
        "banner_timeout": timeout,
        "auth_timeout": timeout,
        "channel_timeout": timeout,
    }


def _trust_on_first_use(client: paramiko.SSHClient, known_hosts: Path) -> None:
    """Check against the session's known_hosts only (never the user's), recording hosts seen for the first time."""
    if known_hosts.exists():
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(TrustOnFirstUse(known_hosts))


def _abandon(conn: fabric.Connection | None, sock: socket.socket) -> None:
    """Close whatever a failed connect left open (the paramiko transport thread, then the socket)."""
    if conn is not None:
        # Not conn.close(): fabric only closes a client whose connect() succeeded, leaving the transport thread
        # reading a socket we are about to close.
        conn.client.close()
    sock.close()


def _fingerprint(key: paramiko.PKey) -> str:
    return public_fingerprint(f"{key.get_name()} {key.get_base64()}")


# What SSH does while a Vast instance boots: the port refuses or resets, the banner never comes, the key is not yet
# in authorized_keys, the session closes mid-command. All of it passes, so all of it is retried.
_RETRYABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, timed out (socket.timeout is TimeoutError, an OSError)
    EOFError,
    paramiko.SSHException,  # banner errors, auth failures (AuthenticationException), channel closed
    CommandTimedOut,
    ThreadException,
)


def wait_for_ssh(
    target: SSHTarget,
    key: SessionKey,
    known_hosts: Path,
    *,
    clock: Clock,
    deadline: float,
    probe: str = DEFAULT_PROBE,
    instance_id: int | None = None,
    first_delay: float = 0.05,
    max_delay: float = 1.0,
    attempt_timeout: float = 10.0,
) -> tuple[fabric.Connection, int]:
    """Connect and probe until SSH answers (Vast's fails for a while after "running"); returns (conn, attempts).

    ``deadline`` is a ``clock.now()`` value, not a duration: pass ``clock.now() + seconds``.
    """
    key.load_private()  # a missing or broken key file is our bug, not the instance's: fail now, not at the deadline
    attempts = 0

    def attempt_once() -> fabric.Connection:
        nonlocal attempts
        attempts += 1
        # A black-holed port must not hold us far past the deadline; at least a second so that a slow handshake can win.
        timeout = min(attempt_timeout, max(deadline - clock.now(), 1.0))
        conn, last_error = _attempt(target, key, known_hosts, probe, timeout)
        if conn is None:
            raise _NotYet(last_error)
        return conn

    backoff = Backoff(first_delay, 1.5, max_delay)
    try:
        conn = poll(attempt_once, clock=clock, deadline=deadline, backoff=backoff, retry_on=(_NotYet,))
    except WaitTimedOut as exc:
        raise errors.SSHNotReady(
            f"SSH on {target} did not answer within {exc.waited:.1f}s "
            f"({exc.attempts} attempt{'s' if exc.attempts != 1 else ''}); last error: {exc.last_error}",
            instance_id=instance_id,
        ) from None
    return conn, attempts


class _NotYet(Exception):
    """One SSH attempt that failed in a way worth another (refused, reset, not yet accepting our key)."""


def _attempt(
    target: SSHTarget, key: SessionKey, known_hosts: Path, probe: str, timeout: float
) -> tuple[fabric.Connection | None, str]:
    """One connect + probe: the open connection, or None and why not."""
    try:
        conn = connect(target, key, known_hosts, timeout=timeout)
    except HostKeyChanged:
        raise  # never retried: waiting will not make a different server trustworthy
    except _RETRYABLE as exc:
        return None, describe_failure(exc)
    try:
        result = conn.run(probe, hide=True, warn=True, in_stream=False, timeout=timeout)
    except _RETRYABLE as exc:
        conn.close()
        return None, f"probe {probe!r}: {describe_failure(exc)}"
    if probe_passed(probe, result):
        return conn, ""
    conn.close()
    return None, f"probe {probe!r} exited {result.exited}{_tail(result.stdout, result.stderr)}"


def probe_passed(probe: str, result: Result) -> bool:
    """Other probes need exit 0; the default one must also print a "ready" line (login noise may come first)."""
    if result.exited != 0:
        return False
    return probe != DEFAULT_PROBE or "ready" in result.stdout.splitlines()


def describe_failure(exc: BaseException) -> str:
    """Say what went wrong in the words of someone waiting for SSH (never with key material: errors redact)."""
    detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({detail})"
    if isinstance(exc, ConnectionResetError):
        return f"connection reset ({detail})"
    if isinstance(exc, TimeoutError):
        return f"timed out ({detail})"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed: the session key is not authorized (yet?) ({detail})"
    if isinstance(exc, EOFError) or "banner" in str(exc).lower():
        return f"connection closed before SSH was ready ({detail})"
    return detail


def _tail(stdout: str, stderr: str, lines: int = 3) -> str:
    text = (stderr.strip() or stdout.strip()).splitlines()[-lines:]
    return (": " + " | ".join(text)) if text else ""


def run_checked(conn: fabric.Connection, command: str, *, timeout: float | None = None) -> Result:
    """Run ``command`` quietly; a non-zero exit raises SSHCommandError (exit code, stderr tail).

    A ``timeout`` that passes raises invoke's ``CommandTimedOut``: the command did not fail, it did not finish.
    """
    result: Result = conn.run(command, hide=True, warn=True, in_stream=False, timeout=timeout)
    if result.exited != 0:
        raise errors.SSHCommandError(command, result.exited, result.stderr)
    return result
