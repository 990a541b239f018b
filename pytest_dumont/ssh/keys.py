"""Ephemeral SSH keys: one ed25519 pair per pytest session, so no user key ever reaches a rented machine."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

if TYPE_CHECKING:
    import paramiko

PRIVATE_NAME = "id_ed25519"
PUBLIC_NAME = "id_ed25519.pub"


@dataclass(frozen=True, repr=False)
class SessionKey:
    """An ephemeral ed25519 key pair made for one pytest session; the private half never leaves its 0600 file."""

    private_path: Path
    public_openssh: str

    @classmethod
    def generate(cls, directory: Path, comment: str) -> SessionKey:
        """Make a new pair in ``directory`` (made, or tightened, to 0700); never overwrites an existing key."""
        if any(c.isspace() for c in comment):
            raise ValueError(f"an SSH key comment must not contain whitespace: {comment!r}")
        _private_directory(directory)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        public_openssh = f"{public.decode('ascii')} {comment}" if comment else public.decode("ascii")
        private_path = directory / PRIVATE_NAME
        _write_new(private_path, pem, 0o600)
        _write_new(directory / PUBLIC_NAME, (public_openssh + "\n").encode("ascii"), 0o644)
        return cls(private_path=private_path, public_openssh=public_openssh)

    @property
    def fingerprint(self) -> str:
        """The public key's OpenSSH fingerprint (``SHA256:...``), safe to log and show in reports."""
        return public_fingerprint(self.public_openssh)

    @property
    def public_path(self) -> Path:
        """Where the public half was written beside the private one (handy for ``ssh-copy-id``)."""
        return self.private_path.with_name(PUBLIC_NAME)

    def load_private(self) -> paramiko.PKey:
        """Read the private half for paramiko; the key stays in memory only as long as the caller holds it."""
        import paramiko

        return paramiko.Ed25519Key.from_private_key_file(str(self.private_path))

    def remove(self) -> None:
        """Delete both halves; removing twice is harmless."""
        self.private_path.unlink(missing_ok=True)
        self.public_path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"SessionKey(ssh-ed25519 {self.fingerprint})"


def public_fingerprint(public_openssh: str) -> str:
    """Return the ``SHA256:`` fingerprint OpenSSH prints for a public key line."""
    blob = base64.b64decode(public_openssh.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def _private_directory(directory: Path) -> None:
    """Make ``directory`` owner-only: ssh refuses private keys that others can reach, and so do we."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (no window where the file is readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)  # the umask may have narrowed it; never widened beyond ``mode``
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
