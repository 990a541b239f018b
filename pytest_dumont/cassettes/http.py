"""HTTP cassettes in vcrpy's format: matchers that ignore host and port, scrubbing hooks, and a requests adapter that
records and replays the provisioning client's calls in order (identical polls answer in recorded order, each once,
as vcrpy plays them; ``allow_playback_repeats`` never).

vcrpy itself is not imported here: importing it loads every HTTP library it can patch (~0.15 s), which a replay of
provisioning does not need. ``vcr_tests`` holds the vcrpy configuration for a test body's own HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from pytest_dumont.cassettes.format import CassetteError
from pytest_dumont.cassettes.tape import PlayOnce
from pytest_dumont.cassettes.virtual_clock import VirtualClock
from pytest_dumont.clock import Clock
from pytest_dumont.safety.deadman import without_switch
from pytest_dumont.secrets.scrub import SECRET_QUERY, Scrubber

# Bodies matter where they choose what happens: the search (which offers) and the create (what runs). The label
# carries the session id, which differs between the recording and each replay.
_BODY_ROUTES = (("POST", "/api/v0/bundles/"), ("PUT", "/api/v0/asks/"))
_UNMATCHED_FIELDS = frozenset({"label"})
_DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "date", "server"})


@dataclass
class VcrRequest:
    """The request fields vcrpy's ``Request`` has and our matchers read (vcrpy's own passes through them too)."""

    method: str
    uri: str
    body: Any = None
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path or "/"

    @property
    def query(self) -> list[tuple[str, str]]:
        return sorted(parse_qsl(urlsplit(self.uri).query, keep_blank_values=True))


def match_path(r1: VcrRequest, r2: VcrRequest) -> None:
    if r1.path != r2.path:
        raise AssertionError(f"path {r1.path} != {r2.path}")


def _query(r: VcrRequest) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in r.query if k.lower() not in SECRET_QUERY)


def match_query(r1: VcrRequest, r2: VcrRequest) -> None:
    if _query(r1) != _query(r2):
        raise AssertionError(f"query {_query(r1)} != {_query(r2)}")


def _body(r: VcrRequest) -> Any:
    raw = r.body.decode() if isinstance(r.body, bytes) else (r.body or "")
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return data
    # The dead-man switch rides in the create's onstart and env; it is the session's safety, not what runs.
    return {k: v for k, v in without_switch(data).items() if k not in _UNMATCHED_FIELDS}


def match_body(r1: VcrRequest, r2: VcrRequest) -> None:
    if not any(r1.method == m and r1.path.startswith(p) for m, p in _BODY_ROUTES):
        return
    if _body(r1) != _body(r2):
        raise AssertionError(f"body {_body(r1)!r} != {_body(r2)!r}")


def match_method(r1: VcrRequest, r2: VcrRequest) -> None:
    if r1.method != r2.method:
        raise AssertionError(f"method {r1.method} != {r2.method}")


MATCH_ON: tuple[Callable[[VcrRequest, VcrRequest], None], ...] = (match_method, match_path, match_query, match_body)


def describe(r: VcrRequest) -> str:
    query = "&".join(f"{k}={v}" for k, v in _query(r))
    return f"{r.method} {r.path}" + (f"?{query}" if query else "")


# --- scrubbing hooks (vcrpy's before_record_* signatures) -------------------------------------------------------


def request_hook(scrubber: Scrubber) -> Callable[[VcrRequest], VcrRequest]:
    def scrub(request: VcrRequest) -> VcrRequest:
        request.uri = scrubber.url(request.uri)
        request.headers = scrubber.headers(dict(request.headers))
        body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else request.body
        request.body = scrubber.body(body)
        return request

    return scrub


def response_hook(scrubber: Scrubber) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def scrub(response: dict[str, Any]) -> dict[str, Any]:
        headers = {k: v for k, v in response.get("headers", {}).items() if k.lower() not in _DROPPED_RESPONSE_HEADERS}
        response["headers"] = scrubber.headers(headers)
        body = response.get("body", {}).get("string")
        if isinstance(body, bytes):  # vcrpy hands bytes (and runs this hook again on load): give bytes back
            response["body"] = {"string": (scrubber.body(body.decode("utf-8", "replace")) or "").encode()}
        else:
            response["body"] = {"string": scrubber.body(body) or ""}
        return response

    return scrub


# --- the provisioning client's tape ------------------------------------------------------------------------------


class HttpTape:
    """One provisioning cassette's HTTP: interactions recorded now, or loaded ones played each once, in order."""

    def __init__(self, path: Path, scrubber: Scrubber, interactions: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.scrubber = scrubber
        self.recorded: list[dict[str, Any]] = []
        self._request_hook = request_hook(scrubber)
        self._response_hook = response_hook(scrubber)
        loaded = [
            (VcrRequest(r["method"], r["uri"], r.get("body"), r["headers"]), item["response"])
            for item in interactions or []
            for r in [item["request"]]
        ]
        self.loaded = PlayOnce(loaded, lambda pair: describe(pair[0]))

    def record(self, prepared: requests.PreparedRequest, response: requests.Response, elapsed: float) -> None:
        request = self._request_hook(_vcr_request(prepared))
        stored = self._response_hook(
            {
                "status": {"code": response.status_code, "message": response.reason},
                "headers": {k: [v] for k, v in response.headers.items()},
                "body": {"string": response.text},
            }
        )
        stored["dumont_elapsed"] = round(elapsed, 6)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        self.recorded.append(
            {
                "request": {
                    "method": request.method,
                    "uri": request.uri,
                    "body": body,
                    "headers": _header_lists(request.headers),
                },
                "response": stored,
            }
        )

    def play(self, prepared: requests.PreparedRequest, clock: VirtualClock) -> requests.Response:
        """The first recorded answer to this request not played yet (vcrpy's rule), the clock moved by its time."""
        request = self._request_hook(_vcr_request(prepared))
        found = self.loaded.take(lambda pair: matches(request, pair[0]))
        if found is None:
            wanted = describe(request)
            raise CassetteError(
                f"{wanted} is not in cassette {self.path}; {self.loaded.miss(wanted)}. The code under test asks "
                "something the recording did not: record this cassette again"
            )
        stored = found[1]
        clock.advance(float(stored.get("dumont_elapsed", 0.0)))  # the time this answer took when recorded
        return _requests_response(prepared, stored)


def matches(r1: VcrRequest, r2: VcrRequest) -> bool:
    try:
        for matcher in MATCH_ON:
            matcher(r1, r2)
    except AssertionError:
        return False
    return True


def _header_lists(headers: Any) -> dict[str, list[str]]:
    """vcrpy's on-disk shape for headers: each name to a list of values."""
    return {str(k): [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in dict(headers).items()}


def _vcr_request(prepared: requests.PreparedRequest) -> VcrRequest:
    return VcrRequest(prepared.method or "GET", prepared.url or "", prepared.body, dict(prepared.headers))


def _requests_response(prepared: requests.PreparedRequest, stored: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = int(stored["status"]["code"])
    response.reason = str(stored["status"].get("message") or "")
    response.headers = CaseInsensitiveDict({k: ", ".join(v) for k, v in stored.get("headers", {}).items()})
    body = stored.get("body", {}).get("string") or ""
    response._content = body.encode() if isinstance(body, str) else body
    response.encoding = "utf-8"
    response.url = prepared.url or ""
    response.request = prepared
    return response


_on_tape = threading.local()


def sent_by_tape() -> bool:
    """Whether the HTTP request being sent now comes from the provisioning client (vcrpy leaves those alone)."""
    return bool(getattr(_on_tape, "sending", False))


class CassetteAdapter(HTTPAdapter):
    """Routes the provisioning client's HTTP through the active tape: played back on replay, recorded on record.

    The tape is per thread: prewarming provisions on a thread of its own while a test may rent on the main one.
    """

    def __init__(self, clock: Clock, *, replaying: bool) -> None:
        super().__init__()
        self.clock = clock
        self.replaying = replaying
        self._local = threading.local()

    @property
    def tape(self) -> HttpTape | None:
        tape: HttpTape | None = getattr(self._local, "tape", None)
        return tape

    @tape.setter
    def tape(self, tape: HttpTape | None) -> None:
        self._local.tape = tape

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        tape = self.tape
        if self.replaying:
            if tape is None or not isinstance(self.clock, VirtualClock):
                raise CassetteError(f"{request.method} {request.path_url}: no provisioning cassette is playing")
            return tape.play(request, self.clock)
        if tape is None:
            return self._send(request, *args, **kwargs)  # outside provisioning (the final sweep): live, unrecorded
        started = self.clock.now()
        response = self._send(request, *args, **kwargs)
        tape.record(request, response, self.clock.now() - started)
        return response

    def _send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        _on_tape.sending = True  # a test's vcrpy cassette, if one is recording, must not take these twice
        try:
            response: requests.Response = super().send(request, *args, **kwargs)
        finally:
            _on_tape.sending = False
        return response
