"""Snapshot, restore and verify files of an instance: tar over SSH through the runner, an MD5 manifest made on the
instance, and a pluggable store (a local directory by default, any S3-compatible store when configured).

The bytes stream instance -> runner -> store and back over one SSH channel each way, so the runner needs no disk for
a local store's copy beyond the store itself. MB are decimal (10^6 bytes) in every figure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pytest_dumont.errors import RestoreFailed, SnapshotError, SnapshotMismatch
from pytest_dumont.ssh.streams import open_stream

CHUNK = 1 << 16


@dataclass(frozen=True)
class FileDigest:
    """One file of a snapshot: its path relative to the snapshot root, its MD5 and its size in bytes."""

    path: str
    md5: str
    size: int


@dataclass(frozen=True)
class Transfer:
    """Bytes moved one way and how long it took."""

    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds: every file's MD5 as ``md5sum`` on the instance saw it, and the archive's own MD5."""

    key: str
    root: str
    files: tuple[FileDigest, ...]
    archive_bytes: int
    archive_md5: str
    upload: Transfer = field(default=Transfer(0, 0.0), compare=False)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        data = asdict(self)
        data.pop("upload")
        return json.dumps(data, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        files = tuple(FileDigest(**f) for f in data.pop("files"))
        return cls(files=files, **data)


class SnapshotStore(Protocol):
    """Where snapshots go: ``put`` a stream of chunks under a key, ``get`` them back. ``describe`` has no secret."""

    def put(self, key: str, chunks: Iterable[bytes]) -> int: ...

    def get(self, key: str) -> Iterator[bytes]: ...

    def describe(self) -> str: ...


class LocalStore:
    """Snapshots as files in a directory of the runner (the default: needs no account anywhere)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / key

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        target = self.path(key)
        staged = target.with_name(f".{target.name}.partial")
        size = 0
        try:
            with staged.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise SnapshotError(f"cannot write snapshot {target}: {exc.strerror}") from None
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, target)  # a snapshot is either whole or absent
        return size

    def get(self, key: str) -> Iterator[bytes]:
        try:
            source = self.path(key).open("rb")
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot {self.path(key)}: {exc.strerror}") from None
        with source:
            while chunk := source.read(CHUNK):
                yield chunk

    def describe(self) -> str:
        return f"local directory {self.directory}"


def _remote_paths(root: str, paths: Sequence[str]) -> list[str]:
    """``paths`` relative to ``root`` (tar and md5sum run from there), refusing any that escape it."""
    base = root.rstrip("/") + "/"
    relative = []
    for path in paths:
        if not path.startswith("/"):
            path = base + path
        if not (path + "/").startswith(base) or "/../" in path + "/":
            raise SnapshotError(f"snapshot path {path} is not under the snapshot root {root}")
        relative.append(path[len(base) :] or ".")
    return relative


def _digests(connection: Any, root: str, relative: Sequence[str]) -> tuple[FileDigest, ...]:
    """MD5 and size of every regular file under ``relative`` (sorted), computed on the instance."""
    quoted = " ".join(shlex.quote(p) for p in relative)
    command = (
        f"cd {shlex.quote(root)} && find {quoted} -type f -printf '%s\\t%p\\n' | sort -t '\t' -k2 && echo '--' && "
        f"find {quoted} -type f -print0 | sort -z | xargs -0 -r md5sum"
    )
    result = connection.run(command, hide=True, warn=True)
    if not result.ok:
        raise SnapshotError(f"cannot list the files to snapshot under {root}: {result.stderr.strip()[-300:]}")
    sizes_text, _, sums_text = result.stdout.partition("--\n")
    sizes = {path: int(size) for size, path in (line.split("\t", 1) for line in sizes_text.splitlines() if line)}
    digests = []
    for line in sums_text.splitlines():
        md5, path = line.split("  ", 1)
        digests.append(FileDigest(path, md5, sizes[path]))
    return tuple(digests)


def snapshot(connection: Any, paths: Sequence[str], store: SnapshotStore, *, key: str, root: str = "/") -> Manifest:
    """Tar ``paths`` on the instance into ``store`` under ``key`` (and ``key.manifest.json``); return the manifest."""
    relative = _remote_paths(root, paths)
    files = _digests(connection, root, relative)
    if not files:
        raise SnapshotError(f"nothing to snapshot: no regular file under {', '.join(paths)}")
    quoted = " ".join(shlex.quote(p) for p in relative)
    archive = hashlib.md5()  # noqa: S324 - an integrity checksum, as md5sum on the instance, not security
    with open_stream(connection, f"tar -C {shlex.quote(root)} -cf - -- {quoted}") as tar:

        def chunks() -> Iterator[bytes]:
            while chunk := tar.recv():
                archive.update(chunk)
                yield chunk

        size = store.put(key, chunks())
        status, stderr = tar.finish()
    if status != 0:
        raise SnapshotError(f"tar on the instance exited {status} while snapshotting {', '.join(paths)}: {stderr}")
    manifest = Manifest(key, root, files, size, archive.hexdigest(), Transfer(size, tar.seconds))
    store.put(f"{key}.manifest.json", [manifest.to_json()])
    return manifest


def load_manifest(store: SnapshotStore, key: str) -> Manifest:
    """The manifest stored beside snapshot ``key``."""
    return Manifest.from_json(b"".join(store.get(f"{key}.manifest.json")))


def restore(connection: Any, manifest: Manifest, store: SnapshotStore, *, root: str | None = None) -> Transfer:
    """Stream snapshot ``manifest.key`` from ``store`` into ``tar -x`` on the instance, under ``root``."""
    target = root or manifest.root
    command = f"mkdir -p {shlex.quote(target)} && tar -C {shlex.quote(target)} -xf -"
    sent = 0
    with open_stream(connection, command) as tar:
        for chunk in store.get(manifest.key):
            if not tar.send(chunk):
                break  # tar gave up (a full disk): its exit status and stderr say why
            sent += len(chunk)
        status, stderr = tar.finish()
    if status != 0:
        # GNU tar says "Wrote only N of M bytes" when a write comes up short: on a full disk, before ENOSPC.
        full = "No space left" in stderr or "Wrote only" in stderr
        reason = "no space left on device" if full else f"tar exited {status}"
        raise RestoreFailed(
            f"restore of snapshot {manifest.key} into {target} on the instance failed: {reason}: {stderr[-400:]}"
        )
    return Transfer(sent, tar.seconds)


def verify(connection: Any, manifest: Manifest, *, root: str | None = None) -> None:
    """Check every file of ``manifest`` under ``root`` with ``md5sum`` on the instance; the first bad one is named."""
    target = root or manifest.root
    quoted = " ".join(shlex.quote(f.path) for f in manifest.files)
    result = connection.run(f"cd {shlex.quote(target)} && md5sum -- {quoted}", hide=True, warn=True)
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        md5, _, path = line.partition("  ")
        found[path] = md5
    for digest in manifest.files:
        shown = f"{target.rstrip('/')}/{digest.path}"
        if found.get(digest.path) != digest.md5:
            raise SnapshotMismatch(shown, digest.md5, found.get(digest.path), manifest.key)


def store_from_environment(env: Mapping[str, str], default_directory: Path) -> SnapshotStore:
    """``DUMONT_S3_BUCKET`` set: an ``S3Store`` from the ``DUMONT_S3_*`` variables; else a ``LocalStore``.

    ``DUMONT_SNAPSHOT_DIR`` chooses the local directory (else ``default_directory``).
    """
    bucket = env.get("DUMONT_S3_BUCKET", "").strip()
    if not bucket:
        return LocalStore(Path(env.get("DUMONT_SNAPSHOT_DIR") or default_directory))
    from pytest_dumont.scenarios.s3 import S3Store

    missing = [n for n in ("DUMONT_S3_KEY_ID", "DUMONT_S3_SECRET") if not env.get(n)]
    if missing:
        raise SnapshotError(f"DUMONT_S3_BUCKET is set but {' and '.join(missing)} is not: the S3 store needs both")
    return S3Store(
        endpoint=env.get("DUMONT_S3_ENDPOINT") or None,
        bucket=bucket,
        key_id=env["DUMONT_S3_KEY_ID"],
        secret=env["DUMONT_S3_SECRET"],
        region=env.get("DUMONT_S3_REGION") or "us-east-1",
    )
