"""Commands that move raw bytes both ways over their own SSH channel: how snapshots leave and reach an instance
(``tar -cf -`` read by the runner, ``tar -xf -`` fed by it) without a copy on either disk.

``open_stream`` asks the connection first: a recording connection wraps the live stream to write it down, a replay
connection answers from the transcript. Everything else gets ``LiveStream`` on a fresh paramiko channel.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

CHUNK = 1 << 16


class CommandStream(Protocol):
    """One command with its stdin and stdout as byte streams; ``finish`` gives its exit status and stderr."""

    seconds: float  # from the open to the end of ``finish``: the figure a bandwidth is computed from

    def recv(self) -> bytes:
        """The next chunk of stdout; ``b""`` once the command has closed it."""

    def send(self, data: bytes) -> bool:
        """Write ``data`` to stdin; False when the command no longer reads (it exited or closed its stdin)."""

    def finish(self) -> tuple[int, str]:
        """Close stdin, wait for the exit; the exit status and everything written to stderr."""

    def close(self) -> None:
        """Release the channel (idempotent)."""

    def __enter__(self) -> CommandStream: ...

    def __exit__(self, *exc: object) -> None: ...


def open_stream(connection: Any, command: str) -> CommandStream:
    """Run ``command`` on ``connection``'s instance with byte streams; use it as a context manager."""
    opener = getattr(connection, "dumont_open_stream", None)
    if opener is not None:
        stream: CommandStream = opener(command)
        return stream
    return LiveStream(connection, command)


class LiveStream:
    """A ``CommandStream`` on a new session channel of the connection's SSH transport."""

    def __init__(self, connection: Any, command: str) -> None:
        connection.open()
        self.started = time.monotonic()
        self.seconds = 0.0
        self.channel = connection.client.get_transport().open_session()
        try:
            self.channel.exec_command(command)
        except BaseException:
            self.channel.close()
            raise

    def recv(self) -> bytes:
        data: bytes = self.channel.recv(CHUNK)
        return data

    def send(self, data: bytes) -> bool:
        if self.channel.exit_status_ready():
            return False  # the command gave up (a full disk): its exit status and stderr say why
        try:
            self.channel.sendall(data)
        except OSError:
            return False
        return True

    def finish(self) -> tuple[int, str]:
        self.channel.shutdown_write()
        status: int = self.channel.recv_exit_status()
        parts = []
        while chunk := self.channel.recv_stderr(CHUNK):
            parts.append(chunk)
        self.seconds = time.monotonic() - self.started
        return status, b"".join(parts).decode(errors="replace").strip()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
