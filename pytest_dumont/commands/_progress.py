"""Progress on stderr while a command waits, only when stderr is a terminal (logs and pipes stay clean)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

FRAMES = "|/-\\"


@contextmanager
def waiting(message: str, stream: TextIO | None = None, interval: float = 0.2) -> Iterator[None]:
    """Show ``message``, a spinner and the seconds waited until the block ends; nothing when not a TTY."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def draw(frame: int) -> None:
        out.write(f"\r{message} {FRAMES[frame % len(FRAMES)]} {time.monotonic() - started:4.0f} s")
        out.flush()

    def spin() -> None:
        frame = 1
        while not done.wait(interval):
            draw(frame)
            frame += 1

    draw(0)  # at once, so even a quick wait shows what it was
    thread = threading.Thread(target=spin, name="dumont-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        out.write("\r" + " " * (len(message) + 10) + "\r")
        out.flush()
