"""The emulator's HTTP face: a server that checks keys, rate-limits, injects faults and dispatches to ``routes``.

Standard library only (``http.server``), so every header is ours: the official CLI refuses any Content-Type but
exactly ``application/json``. Each request runs in a daemon thread; all state lives in the ``World``.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import ops_routes  # noqa: F401  (registers the logs, execute, snapshot and billing routes)
from .errors import ApiError
from .query import QueryError
from .routes import ROUTES, Reply, Request, Route, Routes
from .world import World

JSON = "application/json"
AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}


_API_KEY_IN_QUERY = re.compile(r"(api_key=)[^&\s\"]+")


class RateLimiter:
    """Vast enforces a minimum interval per endpoint and identity; a call that comes too soon gets 429."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate_limit must be > 0 requests per second, got {rate!r}")
        self.rate = rate
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def allow(self, identity: str, endpoint: str) -> bool:
        if self.rate is None:
            return True
        now = self._clock()
        with self._lock:
            last = self._last.get((identity, endpoint))
            if last is not None and now - last < 1.0 / self.rate:
                return False
            self._last[(identity, endpoint)] = now
            return True


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its world, its key and its rate limit, and drops idle connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], world: World, api_key: str, rate_limit: float | None = None) -> None:
        self.world = world
        self.routes = Routes(world)
        self.api_key = api_key
        self.limiter = RateLimiter(rate_limit)
        self.log_requests = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        self.routes.extras.base_url = f"http://{host!s}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on an idle keep-alive connection so that it ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)

    def authenticate(self, key: str | None) -> tuple[bool, int | None]:
        """``(is the account key, instance id if it is an instance_api_key)``."""
        if not key:
            return False, None
        if secrets.compare_digest(key.encode(), self.api_key.encode()):
            return True, None
        return False, self.world.instance_for_key(key)

    def dispatch(self, method: str, target: str, body_bytes: bytes, headers: Mapping[str, str], peer: str) -> Reply:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        matched = [(r, m) for r in ROUTES if (m := r.pattern.match(parts.path))]
        if not matched:
            return Reply(404, {"success": False, "error": "not_found", "msg": f"No such endpoint: {parts.path}"})
        found = next(((r, m) for r, m in matched if r.method == method), None)
        if found is None:
            return Reply(405, {"success": False, "error": "method_not_allowed", "msg": f"{method} not allowed here"})
        rule, match = found
        req = Request(method, parts.path, query, None, {k: int(v) for k, v in match.groupdict().items()})
        if rule.auth:
            denied = self._check_access(rule, req, headers, query, peer)
            if denied is not None:
                return denied
        try:
            req.body = json.loads(body_bytes) if body_bytes.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return Reply(400, {"success": False, "error": "invalid_json", "msg": f"Malformed JSON body: {exc}"})
        try:
            return rule.handler(self.routes, req)
        except ApiError as exc:
            return Reply(exc.status, exc.body())
        except QueryError as exc:
            return Reply(400, {"success": False, "error": exc.error, "msg": exc.msg})

    def _check_access(
        self, rule: Route, req: Request, headers: Mapping[str, str], query: Mapping[str, str], peer: str
    ) -> Reply | None:
        faults = self.world.faults
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else query.get("api_key")
        is_account, instance_id = self.authenticate(key)
        allowed = (
            is_account
            or (not key and rule.anonymous_ok)
            or (instance_id is not None and rule.instance_key_ok and req.params.get("id") == instance_id)
        )
        if not allowed:
            return Reply(faults.auth_status, AUTH_ERROR)
        req.instance_key_for = None if is_account else instance_id
        retry = {"Retry-After": f"{faults.retry_after:g}"}
        if not self.limiter.allow(key or peer, rule.name):
            detail = f"API requests too frequent endpoint threshold={self.limiter.rate:g}"
            return Reply(429, {"detail": detail}, retry)
        status = self.world.roll_http_fault()
        if status == 429:
            return Reply(429, {"detail": "API requests too frequent endpoint threshold=1.0"}, retry)
        if status is not None:
            return Reply(status, {"success": False, "error": "server_error", "msg": f"injected {status}"})
        return None


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "pytest-dumont-emulator"
    timeout = 60  # an idle keep-alive connection is dropped after this long

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle plus delayed ACK add ~40 ms per keep-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = self.server.dispatch(self.command, self.path, body, headers, self.client_address[0])
        except Exception as exc:  # a bug in the emulator must still answer, in JSON
            reply = Reply(500, {"success": False, "error": "emulator_error", "msg": f"{type(exc).__name__}: {exc}"})
        # Bytes are a text served as is (a result_url's content, with its own Content-Type); the rest is JSON.
        raw = isinstance(reply.body, bytes)
        data = reply.body if raw else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if not raw:
            self.send_header("Content-Type", JSON)  # exactly this: the CLI rejects "; charset=utf-8"
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client hung up (or was killed) before its answer: nothing to do

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            # The request line carries ?api_key=... for clients that authenticate so: never print it.
            super().log_message(format, *(_API_KEY_IN_QUERY.sub(r"\1***", str(a)) for a in args))
