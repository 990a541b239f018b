"""Direct ports: one TCP forwarder per mapped port, from the instance's public address to the port inside it.

On Vast a mapped port (``-p 8080:8080`` in ``env``, 22 for ``*_direc`` runtypes, 8080 for ``jupyter_direc``) is a
random port on the machine's public IP that reaches the container's port. Here the public IP is a second loopback
address (``direct_host()``: 127.0.0.2 where it can be bound), and the sandbox shares the emulator's network
namespace, so "the port inside the instance" is the host's loopback: a process in the sandbox listening on 8080
listens on the host's 8080, and the forwarder of ``8080/tcp`` connects to 127.0.0.1:8080. Port 22 forwards to the
instance's own SSH server (whose port is the proxy endpoint, ``ssh_host:ssh_port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

from pytest_dumont.emulator.hosts import direct_host as direct_host  # re-exported: where direct ports listen
from pytest_dumont.emulator.loop import LoopThread
from pytest_dumont.emulator.sshd import bound_socket

_CHUNK = 65536


class PortForwarder:
    """``host:port`` -> ``target``, byte for byte both ways; refuses connections while closed, like a stopped box.

    The port is reserved at construction (bound, not listening) and kept until ``release``, so that it is stable
    across stop and start. Methods are called from any thread but the loop's.
    """

    def __init__(self, loop: LoopThread, host: str, target: tuple[str, int]) -> None:
        self._loop = loop
        self.host = host
        self.target = target
        self._reservation: socket.socket | None = bound_socket(host, 0)
        self.port: int = self._reservation.getsockname()[1]
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __repr__(self) -> str:
        return f"<PortForwarder {self.host}:{self.port} -> {self.target[0]}:{self.target[1]}>"

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def open(self) -> None:
        """Start accepting; returns once listening. Idempotent."""
        with self._lock:
            if self._reservation is None:
                raise RuntimeError(f"{self!r} was released")
            if self._server is not None:
                return
            listener = bound_socket(self.host, self.port)
            try:
                self._server = self._loop.run(self._listen(listener))
            except BaseException:
                listener.close()
                raise

    def close(self) -> None:
        """Stop listening (connects are refused again) and cut every forwarded connection. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
            if server is not None:
                self._loop.run(self._shut(server))

    def release(self) -> None:
        """Close, and free the port for good (the instance was destroyed)."""
        self.close()
        with self._lock:
            if self._reservation is not None:
                self._reservation.close()
                self._reservation = None

    async def _listen(self, listener: socket.socket) -> asyncio.Server:
        return await asyncio.start_server(self._forward, sock=listener)

    async def _shut(self, server: asyncio.Server) -> None:
        server.close()
        for writer in list(self._writers):
            writer.close()
        await server.wait_closed()

    async def _forward(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """One connection: connect to the target (or hang up, as a closed port inside would), then pump."""
        self._writers.add(client_w)
        try:
            try:
                up_r, up_w = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._writers.add(up_w)
            for writer in (client_w, up_w):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # SSH is chatty: no Nagle
            try:
                await asyncio.gather(_pump(client_r, up_w), _pump(up_r, client_w))
            finally:
                self._writers.discard(up_w)
                up_w.close()
        finally:
            self._writers.discard(client_w)
            client_w.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (an SSH client's EOF must reach the server)."""
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (OSError, RuntimeError):
        with contextlib.suppress(Exception):
            sink.close()
