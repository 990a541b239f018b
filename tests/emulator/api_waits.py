"""Helpers for tests of the emulator over HTTP and SSH: poll with a deadline, make SSH key pairs, read history."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEADLINE_S = 30.0


def wait_for(predicate: Callable[[], Any], what: str) -> Any:
    """Poll until ``predicate()`` is truthy; fail after a generous deadline (never a timing assertion)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def keypair() -> tuple[paramiko.PKey, str]:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), f"{public.decode()} dumont@test"


def history(api: Any, instance_id: int) -> dict[str, Any]:
    entries = api.get("/_emulator/instances").json()["instances"]
    return next(e for e in entries if e["id"] == instance_id)
