"""Session keys: made private, readable by paramiko, and never shown."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from pytest_dumont.ssh.keys import SessionKey


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable, so the modes we check are ours, not the umask's."""
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_private_key_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    key = SessionKey.generate(tmp_path / "keys", "dumont-session")

    assert mode(key.private_path) == 0o600
    assert mode(key.private_path.parent) == 0o700


def test_an_existing_open_directory_is_tightened_to_0700(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    os.chmod(directory, 0o755)  # noqa: S103  (the permissive mode is what this test starts from)

    SessionKey.generate(directory, "dumont-session")

    assert mode(directory) == 0o700


def test_private_file_is_openssh_format_and_loads_with_paramiko(tmp_path: Path) -> None:
    key = SessionKey.generate(tmp_path, "dumont-session")

    assert key.private_path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    loaded = key.load_private()
    assert isinstance(loaded, paramiko.Ed25519Key)
    assert f"{loaded.get_name()} {loaded.get_base64()}" == " ".join(key.public_openssh.split()[:2])


def test_public_line_is_openssh_format_with_the_comment(tmp_path: Path) -> None:
    key = SessionKey.generate(tmp_path, "dumont-session-1234")

    kind, blob, comment = key.public_openssh.split(" ")
    parsed = paramiko.Ed25519Key(data=base64.b64decode(blob))
    assert (kind, comment) == ("ssh-ed25519", "dumont-session-1234")
    assert parsed == key.load_private()
    assert key.public_path.read_text() == key.public_openssh + "\n"


def test_fingerprint_is_the_sha256_one_paramiko_computes(tmp_path: Path) -> None:
    key = SessionKey.generate(tmp_path, "dumont-session")

    assert key.fingerprint.startswith("SHA256:")
    assert key.fingerprint == key.load_private().fingerprint


def test_repr_and_str_show_the_fingerprint_and_no_key_material(tmp_path: Path) -> None:
    key = SessionKey.generate(tmp_path, "dumont-session")
    private_body = "".join(key.private_path.read_text().splitlines()[1:-1])
    public_blob = key.public_openssh.split()[1]

    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert key.fingerprint in shown
        assert public_blob not in shown
        assert "PRIVATE" not in shown
        # No 16-character run of the private key's base64 appears anywhere.
        assert not any(private_body[i : i + 16] in shown for i in range(0, len(private_body) - 16))


def test_two_keys_differ(tmp_path: Path) -> None:
    first = SessionKey.generate(tmp_path / "a", "dumont-session")
    second = SessionKey.generate(tmp_path / "b", "dumont-session")

    assert first.fingerprint != second.fingerprint


def test_generate_never_overwrites_an_existing_key(tmp_path: Path) -> None:
    first = SessionKey.generate(tmp_path, "dumont-session")
    before = first.private_path.read_bytes()

    with pytest.raises(FileExistsError):
        SessionKey.generate(tmp_path, "dumont-session")
    assert first.private_path.read_bytes() == before


def test_comment_with_whitespace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whitespace"):
        SessionKey.generate(tmp_path, "two words")


def test_remove_deletes_both_files_and_is_idempotent(tmp_path: Path) -> None:
    key = SessionKey.generate(tmp_path, "dumont-session")

    key.remove()
    key.remove()

    assert not key.private_path.exists()
    assert not key.public_path.exists()
