"""``--dumont-webhook URL``: the session's events as JSON POSTs, delivered by a thread that can never hold up a run.

A receiver that is down, slow or failing (a missing table behind it) must never fail the run: delivery is
fire-and-forget. Events go into a bounded queue (the oldest is dropped when it is full, and counted) that one daemon
thread drains in order, retrying connection errors, 429 and 5xx with a doubling pause. At the end of the session it
gets a short deadline to finish; what is still undelivered is reported in one terminal line, never as a failure.

Each POST body (schema ``pytest-dumont-webhook`` version 1, docs/index.md)::

    {"schema": "pytest-dumont-webhook", "version": 1, "event": "instance_created", "session": "3f1c0a9e27",
     "sequence": 0, "time": "2026-05-04T10:00:00Z", "data": {...}}

Events: ``instance_created``, ``phase_finished``, ``instance_destroyed``, ``budget_hit``, ``leak``,
``session_cost``. A payload holds ids, labels, GPU names, seconds and dollars; never a key, an SSH address or a
command's output.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from pytest_dumont.errors import BudgetExceeded
from pytest_dumont.secrets.redact import redact

SCHEMA = "pytest-dumont-webhook"
VERSION = 1
QUEUE_SIZE = 256  # events held at once; a run that outpaces the receiver drops the oldest
ATTEMPTS = 4  # tries per event
FIRST_PAUSE_S = 0.05  # then 0.1, 0.2...
MAX_PAUSE_S = 1.0
REQUEST_TIMEOUT_S = 5.0
FINISH_DEADLINE_S = 2.0  # the longest the end of a session waits for delivery


def origin(url: str) -> str:
    """``scheme://host:port`` only: a webhook URL's path often holds its token (Slack, Discord)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


@dataclass
class DeliveryTally:
    """What became of the events, for the terminal line."""

    delivered: int = 0
    failed: int = 0  # every attempt failed, or the receiver said 4xx
    dropped: int = 0  # pushed out of a full queue
    last_error: str = ""


class WebhookSender:
    """Posts events in order from a daemon thread; ``post`` never blocks, ``finish`` waits at most its deadline."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.tally = DeliveryTally()
        self._queue: deque[dict[str, Any]] = deque()
        self._queue_size = queue_size
        self._attempts = attempts
        self._session = session or requests.Session()
        self._clock = clock
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._busy = False
        self._down = False  # the last event failed on the connection: try the next ones once until one arrives
        self._thread = threading.Thread(target=self._run, name="dumont-webhook", daemon=True)
        self._thread.start()

    def post(self, event: dict[str, Any]) -> None:
        """Queue ``event``; when the queue is full the oldest queued event is dropped and counted."""
        with self._cond:
            if self._closing:
                self.tally.dropped += 1
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.tally.dropped += 1
            self._queue.append(event)
            self._cond.notify_all()

    def finish(self, deadline_s: float = FINISH_DEADLINE_S) -> int:
        """Deliver what is queued for at most ``deadline_s``; the number of events that never arrived."""
        with self._cond:
            self._closing = True
            self._deadline = self._clock() + deadline_s
            self._cond.notify_all()
        self._thread.join(deadline_s + 0.5)  # a request in flight ends at the deadline at the latest
        with self._cond:
            pending = len(self._queue) + (1 if self._busy else 0)
            self._queue.clear()
        self._session.close()
        return self.tally.failed + self.tally.dropped + pending

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - self._clock()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                remaining = self._remaining()
                if not self._queue or (remaining is not None and remaining <= 0):
                    return
                event = self._queue.popleft()
                self._busy = True
            delivered = self._deliver(event)
            with self._cond:
                self._busy = False
                if delivered:
                    self.tally.delivered += 1
                elif delivered is False:
                    self.tally.failed += 1
                else:  # the deadline passed mid-retry: count it as still pending
                    self._queue.appendleft(event)
                    return

    def _deliver(self, event: dict[str, Any]) -> bool | None:
        """True when delivered, False when given up on, None when the session's deadline cut the retries short."""
        pause = FIRST_PAUSE_S
        attempts = 1 if self._down else self._attempts
        for attempt in range(attempts):
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return None
            timeout = REQUEST_TIMEOUT_S if remaining is None else max(0.05, min(REQUEST_TIMEOUT_S, remaining))
            try:
                answer = self._session.post(self.url, json=event, timeout=timeout)
            except requests.RequestException as exc:
                self.tally.last_error = type(exc).__name__
                self._down = True
            else:
                self._down = False
                if answer.status_code < 300:
                    return True
                self.tally.last_error = f"HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code != 429:
                    return False  # the receiver refuses this event: retrying will not change its mind
            if attempt + 1 < attempts:
                with self._cond:  # a pause that finish() cuts short at the deadline, never a sleep
                    wait = pause if self._deadline is None else min(pause, max(0.0, self._remaining() or 0.0))
                    self._cond.wait(wait)
                pause = min(pause * 2, MAX_PAUSE_S)
        return False


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _offer_view(offer: dict[str, Any]) -> dict[str, Any]:
    return {k: offer.get(k) for k in ("id", "gpu_name", "num_gpus", "dph_total", "geolocation")}


class WebhookPlugin:
    """The pytest plugin: turns pytest-dumont's own hooks into events for ``WebhookSender``."""

    def __init__(self, config: pytest.Config, url: str, session_id: str, sender: WebhookSender | None = None) -> None:
        self.config = config
        self.session_id = session_id
        self.sender = sender or WebhookSender(url)
        self._sequence = 0
        self._lock = threading.Lock()
        self._finished = False

    def emit(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            sequence, self._sequence = self._sequence, self._sequence + 1
        body = {
            "schema": SCHEMA,
            "version": VERSION,
            "event": event,
            "session": self.session_id,
            "sequence": sequence,
            "time": _now_iso(),
            "data": data,
        }
        self.sender.post(body)

    # --- pytest-dumont's hooks (called one implementation at a time; see reporting/notify.py) -------------------

    def pytest_dumont_instance_created(self, instance: dict[str, Any]) -> None:
        offer = _offer_view(instance.get("offer") or {})
        self.emit("instance_created", {"instance_id": instance.get("instance_id"), "label": instance.get("label"),
                                       "offer": offer})  # fmt: skip

    def pytest_dumont_phase_finished(self, phase: dict[str, Any], instance_id: int | None) -> None:
        # Only the phase's name, kind and numbers: a command phase's name is the command, which may hold a secret.
        name = str(phase.get("name", ""))
        self.emit("phase_finished", {
            "instance_id": instance_id, "name": redact(name) if phase.get("kind") != "command" else "command",
            "kind": phase.get("kind"), "duration": phase.get("duration"), "outcome": phase.get("outcome"),
            "cost_usd": phase.get("cost_usd"),
        })  # fmt: skip

    def pytest_dumont_instance_destroyed(self, instance: dict[str, Any]) -> None:
        cost = instance.get("cost") or {}
        self.emit("instance_destroyed", {
            "instance_id": instance.get("instance_id"), "label": instance.get("label"),
            "gpu_name": (instance.get("offer") or {}).get("gpu_name"),
            "billed_usd": cost.get("billed_usd"), "simple_usd": cost.get("simple_usd"),
            "dph_total": cost.get("dph_total"),
        })  # fmt: skip

    def pytest_dumont_session_cost(self, report: dict[str, Any]) -> None:
        totals = report.get("totals") or {}
        if totals.get("leaked"):
            self.emit("leak", {"instance_ids": list(totals["leaked"])})
        keys = ("instances", "tests", "billed_usd", "simple_usd", "gpu_usd", "storage_usd", "leaked")
        self.emit("session_cost", {k: totals.get(k) for k in keys})

    # --- pytest's hooks ------------------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.excinfo is not None and isinstance(call.excinfo.value, BudgetExceeded):
            self.emit("budget_hit", {"nodeid": item.nodeid, "message": redact(str(call.excinfo.value))})
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        line = self.finish()
        if line:
            terminalreporter.write_line(line, yellow=True)

    def pytest_unconfigure(self) -> None:
        self.finish()  # a run without a terminal reporter still stops the thread

    def finish(self) -> str | None:
        """Give delivery its deadline once; the terminal line when something did not arrive."""
        if self._finished:
            return None
        self._finished = True
        undelivered = self.sender.finish()
        tally = self.sender.tally
        if not undelivered:
            return None
        why = f" (last error: {tally.last_error})" if tally.last_error else ""
        return (
            f"dumont webhook: {undelivered} event(s) not delivered to {origin(self.sender.url)}{why}; "
            f"{tally.delivered} delivered, {tally.dropped} dropped from a full queue. The run's result is unaffected"
        )


def register(config: pytest.Config, url: str, session_id: str) -> None:
    """Send this session's events to ``url`` (on the xdist controller or a run without xdist only)."""
    if hasattr(config, "workerinput"):
        return
    config.pluginmanager.register(WebhookPlugin(config, url, session_id), "dumont-webhook")
