"""Send the working tree to the instance, incrementally by content hash, in two SSH commands.

1. ``python3 -c STATE_SCRIPT DIR`` makes DIR and prints what the last sync left there: the manifest it wrote
   (``.dumont-sync.json``: path -> hash, size, mtime), less every file whose size or mtime has changed since, so a
   file a test rewrote on the instance is sent again.
2. Only when something differs: ``python3 -c APPLY_SCRIPT DIR`` reads a JSON line (files to delete: those the last
   sync sent and the tree no longer has; the new manifest), then a tar stream of the changed files, and writes the
   new manifest. Files the sync never sent (the venv, test output) are never touched.

The instance needs ``python3`` on PATH (every CUDA image has one); nothing else is installed for the sync.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_dumont.remote.tree import FileEntry
from pytest_dumont.ssh.streams import LiveStream

MANIFEST_NAME = ".dumont-sync.json"

STATE_SCRIPT = """
import json, os, sys
d = os.path.abspath(os.path.expanduser(sys.argv[1]))
os.makedirs(d, exist_ok=True)
try:
    with open(os.path.join(d, __MANIFEST__)) as f:
        saved = json.load(f)
except (OSError, ValueError):
    saved = {}
known = {}
for name, (digest, size, mtime) in saved.items():
    try:
        st = os.lstat(os.path.join(d, name))
    except OSError:
        continue
    if st.st_size == size and st.st_mtime_ns == mtime:
        known[name] = digest
sys.stdout.write(json.dumps({"dir": d, "files": known, "sent": sorted(saved)}))
""".replace("__MANIFEST__", repr(MANIFEST_NAME))

APPLY_SCRIPT = """
import json, os, sys, tarfile
os.chdir(sys.argv[1])
stdin = sys.stdin.buffer
header = json.loads(stdin.readline())
for name in header["delete"]:
    try:
        os.remove(name)
    except OSError:
        pass
with tarfile.open(fileobj=stdin, mode="r|") as tar:
    if hasattr(tarfile, "data_filter"):
        tar.extraction_filter = tarfile.data_filter
    for member in tar:
        if os.path.lexists(member.name) and not os.path.isdir(member.name):
            os.remove(member.name)
        tar.extract(member, ".")
saved = {}
for name, digest in header["manifest"].items():
    st = os.lstat(name)
    saved[name] = [digest, st.st_size, st.st_mtime_ns]
with open(__MANIFEST__ + ".tmp", "w") as f:
    json.dump(saved, f)
os.replace(__MANIFEST__ + ".tmp", __MANIFEST__)
sys.stdout.write("synced")
""".replace("__MANIFEST__", repr(MANIFEST_NAME))


class SyncError(Exception):
    """A sync command failed on the instance (its exit status and stderr are in the message)."""


@dataclass(frozen=True)
class SyncResult:
    """What a sync did: where the tree is on the instance, and what it sent."""

    remote_dir: str
    files_sent: int
    bytes_sent: int
    deleted: int
    unchanged: int
    seconds: float


class _ChannelWriter(io.RawIOBase):
    """A write-only file over a command's stdin, for ``tarfile`` in stream mode."""

    def __init__(self, stream: LiveStream) -> None:
        self.stream = stream
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if not self.stream.send(chunk):
            raise SyncError("the instance stopped reading the tree (its disk may be full)")
        self.written += len(chunk)
        return len(chunk)


def _python_command(script: str, remote_dir: str) -> str:
    return f"python3 -c {shlex.quote(script)} {shlex.quote(remote_dir)}"


def _run(connection: Any, command: str, feed: Any = None) -> str:
    """Run ``command`` with ``feed(stream)`` writing its stdin; return its stdout, or raise ``SyncError``."""
    with LiveStream(connection, command) as stream:
        if feed is not None:
            feed(stream)
        stream.channel.shutdown_write()
        chunks = []
        while chunk := stream.recv():
            chunks.append(chunk)
        status, stderr = stream.finish()
    if status != 0:
        hint = " (is python3 on the instance's PATH?)" if status == 127 else ""
        raise SyncError(f"the sync command exited with {status}{hint}: {stderr[-2000:]}")
    return b"".join(chunks).decode(errors="replace")


def remote_state(connection: Any, remote_dir: str) -> tuple[str, dict[str, str], list[str]]:
    """The tree's absolute path on the instance, the files still as the last sync left them, and all it sent."""
    answer = json.loads(_run(connection, _python_command(STATE_SCRIPT, remote_dir)))
    return answer["dir"], answer["files"], answer["sent"]


def sync_tree(connection: Any, root: Path, manifest: dict[str, FileEntry], remote_dir: str) -> SyncResult:
    """Make ``remote_dir`` on the instance hold ``manifest``'s files as they are under ``root`` now."""
    started = time.monotonic()
    absolute, known, sent_before = remote_state(connection, remote_dir)
    changed = [entry for name, entry in manifest.items() if known.get(name) != entry.digest]
    deleted = [name for name in sent_before if name not in manifest]
    if not changed and not deleted:
        return SyncResult(absolute, 0, 0, 0, len(manifest), time.monotonic() - started)
    header = {"delete": deleted, "manifest": {name: entry.digest for name, entry in manifest.items()}}

    def feed(stream: LiveStream) -> None:
        writer = _ChannelWriter(stream)
        writer.write(json.dumps(header).encode() + b"\n")
        buffered = io.BufferedWriter(writer, buffer_size=1 << 16)
        with tarfile.open(fileobj=buffered, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in changed:
                tar.add(root / entry.path, arcname=entry.path, recursive=False)
        buffered.flush()

    _run(connection, _python_command(APPLY_SCRIPT, absolute), feed)
    return SyncResult(
        absolute,
        len(changed),
        sum(entry.size for entry in changed),
        len(deleted),
        len(manifest) - len(changed),
        time.monotonic() - started,
    )
