"""What the API hands out by URL or keeps on the side: command results behind a ``result_url``, snapshot requests.

Vast answers ``request_logs`` and ``command`` with a ``result_url`` (an object store link) that the client then GETs
without a key; the emulator serves those texts itself, under ``/_emulator/results/<token>``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

RESULTS_PATH = "/_emulator/results/"
KEPT_RESULTS = 512  # the oldest texts are dropped past this: a client fetches its result right away


class Extras:
    """Per-server side state: published texts, recorded snapshot requests, the base URL clients reach us at."""

    def __init__(self) -> None:
        self.base_url = ""
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._texts: OrderedDict[int, str] = OrderedDict()
        self._snapshots: list[dict[str, Any]] = []

    def publish(self, text: str) -> str:
        """Keep ``text`` and return the absolute URL that serves it (no key needed, as an object store link)."""
        token = secrets.randbits(62)
        with self._lock:
            self._texts[token] = text
            while len(self._texts) > KEPT_RESULTS:
                self._texts.popitem(last=False)
        return f"{self.base_url}{RESULTS_PATH}{token}"

    def text(self, token: int) -> str | None:
        with self._lock:
            return self._texts.get(token)

    def record_snapshot(self, request: dict[str, Any]) -> None:
        with self._lock:
            self._snapshots.append(dict(request))

    def clear(self) -> None:
        """Forget every text and snapshot request (``/_emulator/reset``)."""
        with self._lock:
            self._texts.clear()
            self._snapshots.clear()

    def snapshots(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._snapshots]
