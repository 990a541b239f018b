"""Send the working tree to the instance, incrementally by content hash, in one SSH command.

``python3 -S -c SYNC_SCRIPT DIR`` makes DIR and first prints what the last sync left there: the manifest it wrote
(``.dumont-sync.json``: path -> hash, size, mtime), less every file whose size or mtime has changed since, so a file
a test rewrote on the instance is sent again. The runner answers on the same channel with a JSON line (files to
delete: those the last sync sent and the tree no longer has; the new manifest; the changed files' paths, sizes and
modes) and those files' bytes back to back, or ``null`` when nothing differs. Files the sync never sent (the venv,
test output) are never touched. A tar stream was several times slower at both ends; a second SSH command cost a
second interpreter start on the instance.

The instance needs ``python3`` on PATH (every CUDA image has one); nothing else is installed for the sync.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_dumont.remote.tree import FileEntry
from pytest_dumont.secrets.redact import redact
from pytest_dumont.ssh.streams import LiveStream

MANIFEST_NAME = ".dumont-sync.json"
_CHUNK = 1 << 16

SYNC_SCRIPT = """
import json, os, sys
d = os.path.abspath(os.path.expanduser(sys.argv[1]))
os.makedirs(d, exist_ok=True)
os.chdir(d)
try:
    with open(__MANIFEST__) as f:
        saved = json.load(f)
except (OSError, ValueError):
    saved = {}
known = {}
for name, (digest, size, mtime) in saved.items():
    try:
        st = os.lstat(name)
    except OSError:
        continue
    if st.st_size == size and st.st_mtime_ns == mtime:
        known[name] = digest
sys.stdout.write(json.dumps({"dir": d, "files": known, "sent": sorted(saved)}) + "\\n")
sys.stdout.flush()
stdin = sys.stdin.buffer
header = json.loads(stdin.readline() or "null")
if header is None:
    sys.exit(0)
for name in header["delete"]:
    try:
        os.remove(name)
    except OSError:
        pass
made = set()
for name, size, mode in header["files"]:
    if name.startswith("/") or ".." in name.split("/"):
        sys.exit("refusing a path outside the tree: " + name)
    parent = os.path.dirname(name)
    if parent and parent not in made:
        os.makedirs(parent, exist_ok=True)
        made.add(parent)
    partial = name + ".dumont-partial"
    with open(partial, "wb") as f:
        left = size
        while left:
            chunk = stdin.read(min(left, 1 << 20))
            if not chunk:
                sys.exit("the stream ended inside " + name)
            f.write(chunk)
            left -= len(chunk)
    os.chmod(partial, mode)
    os.replace(partial, name)
saved = {}
for name, digest in header["manifest"].items():
    st = os.lstat(name)
    saved[name] = [digest, st.st_size, st.st_mtime_ns]
with open(__MANIFEST__ + ".tmp", "w") as f:
    json.dump(saved, f)
os.replace(__MANIFEST__ + ".tmp", __MANIFEST__)
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


def sync_tree(connection: Any, root: Path, manifest: dict[str, FileEntry], remote_dir: str) -> SyncResult:
    """Make ``remote_dir`` on the instance hold ``manifest``'s files as they are under ``root`` now."""
    started = time.monotonic()
    # -S: the script needs the standard library only, and skipping site-packages saves a good part of the start-up.
    command = f"python3 -S -c {shlex.quote(SYNC_SCRIPT)} {shlex.quote(remote_dir)}"
    with LiveStream(connection, command) as stream:
        state = _read_line(stream)
        absolute, known, sent_before = state["dir"], state["files"], state["sent"]
        changed = [entry for name, entry in manifest.items() if known.get(name) != entry.digest]
        deleted = [name for name in sent_before if name not in manifest]
        if changed or deleted:
            header = {
                "delete": deleted,
                "manifest": {name: entry.digest for name, entry in manifest.items()},
                "files": [[entry.path, entry.size, entry.mode] for entry in changed],
            }
            _send(stream, json.dumps(header).encode() + b"\n")
            for entry in changed:
                _send_file(stream, root / entry.path, entry.size)
        else:
            _send(stream, b"null\n")
        stream.channel.shutdown_write()
        while stream.recv():
            pass
        status, stderr = stream.finish()
    if status != 0:
        hint = " (is python3 on the instance's PATH?)" if status == 127 else ""
        raise SyncError(f"the sync command exited with {status}{hint}: {redact(stderr[-2000:])}")
    return SyncResult(
        absolute,
        len(changed),
        sum(entry.size for entry in changed),
        len(deleted),
        len(manifest) - len(changed),
        time.monotonic() - started,
    )


def _read_line(stream: LiveStream) -> dict[str, Any]:
    """The instance's first line: its state, as JSON (nothing else comes before the runner answers)."""
    buffer = b""
    while b"\n" not in buffer:
        chunk = stream.recv()
        if not chunk:
            status, stderr = stream.finish()
            hint = " (is python3 on the instance's PATH?)" if status == 127 else ""
            raise SyncError(f"the sync command exited with {status}{hint}: {redact(stderr[-2000:])}")
        buffer += chunk
    line = buffer.partition(b"\n")[0]
    state: dict[str, Any] = json.loads(line)
    return state


def _send(stream: LiveStream, data: bytes) -> None:
    if not stream.send(data):
        raise SyncError("the instance stopped reading the tree (its disk may be full)")


def _send_file(stream: LiveStream, path: Path, size: int) -> None:
    """Exactly ``size`` bytes of ``path``: a file that shrank since it was hashed is padded (the next sync fixes it)."""
    with path.open("rb") as source:
        left = size
        while left:
            chunk = source.read(min(left, _CHUNK)) or bytes(min(left, _CHUNK))
            _send(stream, chunk)
            left -= len(chunk)
