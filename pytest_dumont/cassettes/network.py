"""No network on replay: while blocked, any connection (or name lookup) that leaves loopback fails loudly."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_dumont.errors import NetworkBlocked as NetworkBlocked

_lock = threading.Lock()
_depth = 0
_saved: dict[str, Any] = {}
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})


def is_loopback(host: object) -> bool:
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> NetworkBlocked:
    return NetworkBlocked(
        f"replay blocks the network, and this test tried to {what}. A replayed test must get every answer from "
        "its cassettes: record it again (the command is in the skip reason of an unrecorded test) or run it live"
    )


def _guard_address(address: Any) -> None:
    if isinstance(address, tuple) and len(address) >= 2 and not is_loopback(address[0]):
        raise _refuse(f"connect to {address[0]}:{address[1]}")


def _connect(self: Any, address: Any) -> None:
    _guard_address(address)
    _saved["connect"](self, address)


def _connect_ex(self: Any, address: Any) -> int:
    _guard_address(address)
    result: int = _saved["connect_ex"](self, address)
    return result


def _is_address(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host.decode() if isinstance(host, bytes) else host).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # An address literal needs no lookup (connect is checked on its own); a name would ask a DNS server.
    if not (is_loopback(host) or _is_address(host)):
        raise _refuse(f"look up the address of {host!r}")
    return _saved["getaddrinfo"](host, *args, **kwargs)


@contextmanager
def block_network() -> Iterator[None]:
    """Refuse non-loopback connects and lookups inside the block (re-entrant; loopback, unix sockets still work)."""
    global _depth
    with _lock:
        if _depth == 0:
            _saved.update(
                connect=socket.socket.connect, connect_ex=socket.socket.connect_ex, getaddrinfo=socket.getaddrinfo
            )
            socket.socket.connect = _connect  # type: ignore[method-assign]
            socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
            socket.getaddrinfo = _getaddrinfo
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                socket.socket.connect = _saved["connect"]  # type: ignore[method-assign]
                socket.socket.connect_ex = _saved["connect_ex"]  # type: ignore[method-assign]
                socket.getaddrinfo = _saved["getaddrinfo"]
                _saved.clear()
