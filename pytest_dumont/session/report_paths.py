"""Where the run's reports go: checked when pytest starts, so a bad path costs nothing, not a rented machine's report.

pytest-html, JUnit XML and our JSON report are written at the session's end. A directory or an unwritable path there
used to crash that end (pytest-html: ``IsADirectoryError``, and pytest's terminal summaries, ours with the cost, were
lost with it) or be found only after renting. ``check`` turns it into a usage error at configure; ``SummaryGuard``
writes our cost summary anyway if another plugin's end-of-session writer still raises.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_dumont.session.state import SESSION_KEY

if TYPE_CHECKING:
    from pytest_dumont.session.settings import Settings

# (flag shown, option dest) of the writers pytest and pytest-html own; ours is the settings' json_path.
OTHER_WRITERS = (("--html", "htmlpath"), ("--junitxml", "xmlpath"))


def check(config: pytest.Config, settings: Settings) -> None:
    """Raise ``pytest.UsageError`` naming the first report path that cannot be written as a file."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker writes no report; its controller checked
    destinations = [(flag, getattr(config.option, dest, None)) for flag, dest in OTHER_WRITERS]
    destinations.append(("--dumont-json", settings.json_path))
    for flag, raw in destinations:
        if not raw:
            continue
        problem = why_unwritable(Path(str(raw)).expanduser())
        if problem is not None:
            raise pytest.UsageError(
                f"{flag} {raw}: {problem}. Give the path of a file in a writable directory; nothing was run or rented"
            )


def why_unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written as a file (created with its missing directories), or None if it can."""
    path = path.absolute()
    if path.is_dir():
        return f"is a directory (a file in it would do, e.g. {path / 'report'}{path.suffix or '.html'})"
    if path.exists():
        return None if os.access(path, os.W_OK) else "is a file this user cannot write"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable by this user"
    return None


class SummaryGuard:
    """Writes our terminal summary when another plugin's ``pytest_sessionfinish`` raises.

    pytest's terminal reporter writes every summary after the session's end hooks; one that raises (a report writer
    on a full disk, a path gone since configure) skips them all, and the run's cost with them.
    """

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        try:
            return (yield)
        except Exception:
            with suppress(Exception):  # the writer's own error is what pytest must show
                write_summary_now(session.config)
            raise


def write_summary_now(config: pytest.Config) -> None:
    """Our part of the terminal summary, as ``pytest_terminal_summary`` would have written it."""
    state = config.stash.get(SESSION_KEY, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if state is None or reporter is None or hasattr(config, "workerinput"):
        return
    from pytest_dumont.reporting import RUN_KEY

    run = config.stash.get(RUN_KEY, None)
    if state.ledger.records() or run is not None:
        from pytest_dumont.reporting import terminal

        terminal.write_session(reporter.write_line, reporter.write_sep, state, run)
    for error in state.teardown_errors:
        reporter.write_line(f"TEARDOWN ERROR: {error}", red=True)
