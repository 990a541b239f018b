"""The loud line a session's summary ends with for every instance left parked: a parked instance bills on, so the
person who ran the session must see it, its rate and its expiry, and the command that ends it."""

from __future__ import annotations

import time

import pytest

from pytest_dumont.errors import DumontError
from pytest_dumont.safety.ledger_file import LedgerFile
from pytest_dumont.safety.parked import parked_entries


def loud_line(instance_id: int, dph_total: float, expires: float) -> str:
    until = time.strftime("%H:%M", time.localtime(expires))
    return f"PARKED instance {instance_id} billing ${dph_total:.2f}/h until {until} - dumont release {instance_id}"


class ParkedSummary:
    """A pytest plugin that ends the terminal summary with a loud line per instance parked for this API."""

    def __init__(self, ledger: LedgerFile, api_url: str) -> None:
        self.ledger = ledger
        self.api_url = api_url.rstrip("/")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        try:
            entries = parked_entries(self.ledger, self.api_url)
        except DumontError as exc:
            terminalreporter.write_line(f"DUMONT WARNING: cannot list parked instances: {exc.message}", red=True)
            return
        for entry, info in entries:
            if info is not None and entry.instance_id is not None and info.expires > time.time():
                line = loud_line(entry.instance_id, info.dph_total, info.expires)
                terminalreporter.write_line(line, red=True, bold=True)
