"""Which files of the rootdir go to the instance, and their content hashes: the manifest a sync compares.

In a git work tree: the tracked files and the untracked ones ``.gitignore`` does not ignore (``git ls-files
--cached --others --exclude-standard``), as the team sees its tree. Without git: every file, less ``DEFAULT_EXCLUDES``
(documented in docs/remote.md). pytest's last-failed cache goes along either way, so ``--lf`` selects the same
tests on the instance. The size cap is checked here, before anything is rented or sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Without git: directories and files never sent (virtual environments, caches, build output, VCS metadata).
DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".dumont-venv",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
)
# pytest's cache files that select tests (--lf, --ff, --sw): sent when they exist, even though they are ignored.
SELECTION_CACHE = (".pytest_cache/v/cache/lastfailed", ".pytest_cache/v/cache/stepwise")
_CHUNK = 1 << 20


class TreeTooLarge(Exception):
    """The working tree is over ``--dumont-remote-max-mb``."""


@dataclass(frozen=True)
class FileEntry:
    """One file to send: its path relative to the rootdir (POSIX), size, permission bits and content hash."""

    path: str
    size: int
    mode: int
    digest: str


def git_files(root: Path) -> list[str] | None:
    """The tree as git sees it, relative to ``root``; None when ``root`` is not in a git work tree (or no git)."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


_EXCLUDED_NAMES = frozenset(p for p in DEFAULT_EXCLUDES if "*" not in p)
_EXCLUDED_SUFFIXES = tuple(p[1:] for p in DEFAULT_EXCLUDES if p.startswith("*") and "*" not in p[1:])


def _excluded(name: str) -> bool:
    return name in _EXCLUDED_NAMES or name.endswith(_EXCLUDED_SUFFIXES)


def walked_files(root: Path) -> list[str]:
    """Every file under ``root`` less ``DEFAULT_EXCLUDES`` (matched against each path component)."""
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _excluded(d))
        base = Path(directory).relative_to(root)
        found.extend((base / name).as_posix() for name in sorted(files) if not _excluded(name))
    return found


def list_tree(root: Path) -> list[str]:
    """The paths (relative, POSIX) a sync sends: git's view, or the walk; plus pytest's selection cache."""
    names = git_files(root)
    if names is None:
        names = walked_files(root)
    chosen = dict.fromkeys(names)
    for name in SELECTION_CACHE:
        if (root / name).is_file():
            chosen[name] = None
    return list(chosen)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """Digests as last computed, by path with the size, mtime and inode they had: a re-sync hashes what changed.

    git's index does the same. A file whose mtime is within a second of the cache's last save is hashed again: it
    may have changed since within the file system's timestamp granularity ("racy git"). A cache that cannot be read
    is empty; one that cannot be written costs the next run some hashing, nothing else.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.trusted_before = 0
        self.entries: dict[str, list[Any]] = {}
        if path is not None:
            try:
                data = json.loads(path.read_text())
                self.entries = dict(data["files"])
                self.trusted_before = int(data["written_ns"]) - 1_000_000_000
            except (OSError, ValueError, KeyError, TypeError):
                self.entries = {}

    def digest(self, root: Path, name: str, info: os.stat_result) -> str:
        seen = self.entries.get(name)
        key = [info.st_size, info.st_mtime_ns, info.st_ino]
        if seen is not None and seen[:3] == key and info.st_mtime_ns < self.trusted_before:
            return str(seen[3])
        digest = _digest(root / name)
        self.entries[name] = [*key, digest]
        return digest

    def save(self, names: Iterable[str]) -> None:
        if self.path is None:
            return
        kept = {name: self.entries[name] for name in names if name in self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps({"written_ns": time.time_ns(), "files": kept}))
            os.replace(partial, self.path)
        except OSError:
            pass


def build_manifest(root: Path, names: list[str], max_mb: float, cache: HashCache | None = None) -> dict[str, FileEntry]:
    """Hash each regular file; raise ``TreeTooLarge`` (before any hashing is wasted) when the total is over the cap.

    Deleted-but-tracked files and anything that is not a regular file (a symlink, a socket) are skipped.
    """
    cache = cache or HashCache(None)
    sizes: dict[str, os.stat_result] = {}
    total = 0
    for name in names:
        try:
            info = (root / name).lstat()
        except OSError:
            continue  # tracked by git but deleted in the work tree
        if not stat.S_ISREG(info.st_mode):
            continue
        sizes[name] = info
        total += info.st_size
    limit = max_mb * 1_000_000
    if total > limit:
        biggest = sorted(sizes, key=lambda n: sizes[n].st_size, reverse=True)[:3]
        listing = ", ".join(f"{n} ({sizes[n].st_size / 1e6:.1f} MB)" for n in biggest)
        raise TreeTooLarge(
            f"the working tree to send is {total / 1e6:.1f} MB in {len(sizes)} files, over "
            f"--dumont-remote-max-mb={max_mb:g}; nothing was sent. Largest: {listing}. Ignore what the tests do not "
            "need in .gitignore, or raise --dumont-remote-max-mb"
        )
    manifest = {
        name: FileEntry(name, info.st_size, stat.S_IMODE(info.st_mode), cache.digest(root, name, info))
        for name, info in sizes.items()
    }
    cache.save(manifest)
    return manifest
