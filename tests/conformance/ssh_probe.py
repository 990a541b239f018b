"""Keys and an SSH probe for the conformance tests: the test checks a client's instance as a user's test would."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEADLINE_S = 60.0


def keypair(comment: str) -> tuple[paramiko.PKey, str, str]:
    """(paramiko key, OpenSSH private key text, ``ssh-ed25519 AAAA... comment``)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), pem, f"{public.decode()} {comment}"


def run(host: str, port: int, key: paramiko.PKey, command: str, user: str = "root") -> str:
    """Run ``command`` over SSH and return its stdout; raises on a refused connection or key."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - the emulator's throwaway server
    try:
        client.connect(host, port=port, username=user, pkey=key, allow_agent=False, look_for_keys=False, timeout=10)
        _, stdout, _ = client.exec_command(command, timeout=30)
        return str(stdout.read().decode())
    finally:
        client.close()


def run_when_up(host: str, port: int, key: paramiko.PKey, command: str, deadline_s: float = DEADLINE_S) -> str:
    """As ``run``, retried until the instance's SSH is up and takes the key (a client waits the same way)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return run(host, port, key, command)
        except (OSError, paramiko.SSHException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for(predicate: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Poll until ``predicate()`` is truthy; fail after a generous deadline (never a timing assertion)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
