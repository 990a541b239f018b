"""Files several processes share (the ledger of live instances, failed machines, cassettes): an exclusive lock with
a deadline, and writes that leave the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pytest_dumont.clock import SystemClock
from pytest_dumont.errors import LockTimeout as LockTimeout
from pytest_dumont.waiting import Backoff, WaitTimedOut, poll


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created 0600) with our pid in it; closing releases it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        clock = SystemClock()

        def locked() -> bool | None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another process holds the lock: there is nothing to wait on but time
            return True

        try:
            poll(locked, clock=clock, deadline=clock.now() + timeout, backoff=Backoff(0.02, 1.0, 0.02))
        except WaitTimedOut:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockTimeout(lock_path, timeout, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str, *, mode: int = 0o600, durable: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; ``durable`` also fsyncs before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.chmod(partial, mode)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
