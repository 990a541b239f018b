"""The pytest entry point: wires options, markers, fixtures and reports together; computes nothing itself."""

from __future__ import annotations

import pytest

from pytest_dumont import fixtures, markers, settings
from pytest_dumont.errors import MissingApiKey
from pytest_dumont.reporting import terminal
from pytest_dumont.session import SESSION_KEY, SessionState


def pytest_addoption(parser: pytest.Parser) -> None:
    settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    markers.register(config)
    resolved = settings.resolve(config)
    if resolved.mode == "record":
        raise pytest.UsageError(
            "--dumont-mode=record is not available yet: cassettes are not written by this version. "
            "Use --dumont-mode=live (real instances) or --dumont-mode=emulator"
        )
    if resolved.spends_money and resolved.api_key is None:
        raise pytest.UsageError(f"{MissingApiKey().message} [mode {resolved.mode} from {resolved.mode_source}]")
    config.stash[SESSION_KEY] = SessionState(settings=resolved)
    config.pluginmanager.register(fixtures, "dumont-fixtures")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: real_gpu must be on the items before -m deselects by marker.
    markers.mark_gpu_items(items)


def pytest_report_header(config: pytest.Config) -> str | None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return None
    s = state.settings
    return f"dumont: mode {s.mode} ({s.mode_source}), {s.filters.describe()}, session {state.session_id}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    terminal.write_summary(
        terminalreporter.write_line, terminalreporter.write_sep, state.ledger, state.clock.now(), state.settings.mode
    )
    for error in state.teardown_errors:
        terminalreporter.write_line(f"TEARDOWN ERROR: {error}", red=True)
