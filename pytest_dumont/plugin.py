"""The pytest entry point: wires options, markers, fixtures and reports together; computes nothing itself."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from pytest_dumont import fixtures
from pytest_dumont.errors import ConfigurationError, DumontError, MissingApiKey
from pytest_dumont.reporting import CELLS, REPORTED_FIXTURES, RUN_KEY
from pytest_dumont.session import markers, report_paths, settings
from pytest_dumont.session.state import SESSION_KEY, SessionState

# pytest-html columns (sortable); cells come with a GPU test's call report, empty for other rows.
HTML_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dumont_gpu", "GPU"),
    ("dumont_dph", "$/h"),
    ("dumont_provision", "Provision (s)"),
    ("dumont_cost", "Cost ($)"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    settings.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_dumont import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_cmdline_main(config: pytest.Config) -> None:
    # After xdist's (tryfirst), before any pytest_configure: remote mode makes this run an xdist controller.
    if config.getoption("dumont_remote", None) or config.getini("dumont_remote") or os.environ.get("DUMONT_REMOTE"):
        resolved = _resolve(config)
        if resolved.remote and not hasattr(config, "workerinput"):
            from pytest_dumont.remote import session as remote

            remote.prepare_xdist(config, resolved)


def pytest_configure(config: pytest.Config) -> None:
    markers.register(config)
    resolved = _resolve(config)
    report_paths.check(config, resolved)  # a report that cannot be written is a usage error before anything is rented
    if resolved.spends_money and resolved.api_key is None:
        raise pytest.UsageError(f"{MissingApiKey().message} [mode {resolved.mode} from {resolved.mode_source}]")
    if resolved.record_mode != "none" and _under_xdist(config):
        raise pytest.UsageError(
            "recording cassettes under pytest-xdist is not supported: each worker would write a share of the tests "
            "against instances it does not own. Record in one process (-n 0 or -p no:xdist); replay with any -n"
        )
    state = SessionState(settings=resolved)
    if resolved.mode == "replay":  # replay answers from cassettes on a virtual clock: nothing waits for real
        from pytest_dumont.cassettes.virtual_clock import VirtualClock

        state.clock = VirtualClock()
    config.stash[SESSION_KEY] = state
    config.pluginmanager.register(fixtures, "dumont-fixtures")
    config.pluginmanager.register(report_paths.SummaryGuard(), "dumont-summary-guard")
    if resolved.remote and not hasattr(config, "workerinput"):
        from pytest_dumont.remote import session as remote

        remote.configure(config, state)
    # The budget's hooks (max-minutes, keep-on-failure, budget warnings) are registered by safety.arm with the pool.
    if resolved.check_secrets:
        from pytest_dumont.secrets import check as secret_check

        config.pluginmanager.register(secret_check, "dumont-secret-check")
    if resolved.webhook_url:
        from pytest_dumont.reporting import webhook

        webhook.register(config, resolved.webhook_url, state.session_id)


def _resolve(config: pytest.Config) -> settings.Settings:
    """The session's settings; a bad value is pytest's usage error (its message, no traceback)."""
    try:
        return settings.resolve(config)
    except ConfigurationError as exc:
        raise pytest.UsageError(exc.message) from None


_SHARED_COLLECTED = pytest.StashKey[bool]()  # a collected test uses the shared instance (before -k/-m deselect)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: real_gpu must be on the items before -m deselects by marker. Listing (--fixtures, --co) lists even
    # with a marker typo; the typo is an error when tests run.
    gpu, config.stash[_SHARED_COLLECTED] = markers.mark_gpu_items(items, check=not _only_lists(config))
    state = config.stash.get(SESSION_KEY, None)
    if gpu and state is not None and state.settings.uses_cassettes:
        _open_cassettes(config, state)


def _open_cassettes(config: pytest.Config, state: SessionState) -> None:
    """Replay reads cassettes and a record mode writes them: opened once GPU tests are collected, not before."""
    from pytest_dumont.cassettes import CASSETTES_KEY
    from pytest_dumont.cassettes.session import CassetteSession

    if CASSETTES_KEY not in config.stash:
        config.stash[CASSETTES_KEY] = CassetteSession(state.settings, config.rootpath, state.clock)
        config.pluginmanager.register(config.stash[CASSETTES_KEY], "dumont-cassettes")


def _only_lists(config: pytest.Config) -> bool:
    """``--fixtures``, ``--fixtures-per-test`` or ``--collect-only``: nothing will run."""
    option = config.option
    return bool(
        getattr(option, "showfixtures", False)
        or getattr(option, "show_fixtures_per_test", False)
        or getattr(option, "collectonly", False)
    )


def _under_xdist(config: pytest.Config) -> bool:
    """A controller with workers, or a worker: only then is the sharing module worth importing."""
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


def pytest_sessionstart(session: pytest.Session) -> None:
    # An xdist controller in shared mode starts renting here, before xdist spawns the workers (its hook is trylast).
    if _under_xdist(session.config):
        from pytest_dumont.session import xdist

        xdist.controller_start(session.config)


@pytest.hookimpl(tryfirst=True)  # on an xdist worker, before xdist reports the collection to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    # No second pass over the items of a suite without GPU tests; prewarm.start looks at what -k/-m left.
    if session.config.stash.get(_SHARED_COLLECTED, False):
        if hasattr(session.config, "workerinput"):
            from pytest_dumont.session import xdist

            xdist.worker_collected(session)  # shared mode: the controller releases the instance after these
        if _only_lists(session.config):
            return  # --collect-only, --fixtures-per-test: no test runs, so nothing is rented for one
        from pytest_dumont.session import prewarm

        prewarm.start(session)  # GPU tests collected: the instance boots while the other tests run


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return None
    s = state.settings
    lines = [f"dumont: mode {s.mode} ({s.mode_source}), {s.filters.describe()}, session {state.session_id}"]
    if s.mode == "emulator":
        lines.append(f"dumont: {settings.emulator_in_use(s)}")
    if not _under_xdist(config):
        return lines
    from pytest_dumont.session import xdist

    xdist_line = xdist.header(config)
    return [*lines, xdist_line] if xdist_line else lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    run = config.stash.get(RUN_KEY, None)
    if state.ledger.records() or run is not None:
        from pytest_dumont.reporting import terminal

        terminal.write_session(terminalreporter.write_line, terminalreporter.write_sep, state, run)
    for error in state.teardown_errors:
        terminalreporter.write_line(f"TEARDOWN ERROR: {error}", red=True)


# --- reporting: each hook returns at once unless the session used a GPU; the work is in pytest_dumont.reporting ----


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "call" and not REPORTED_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
        from pytest_dumont.reporting.per_test import on_call_report

        on_call_report(item, report)
        if report.failed:
            from pytest_dumont.session import held

            if held.explain_failure(item, call, report):  # its interruptible instance was preempted: say so
                return report
    if call.excinfo is not None and isinstance(call.excinfo.value, DumontError) and report.longrepr is not None:
        from pytest_dumont.session import error_display

        error_display.shorten(item, call, report)  # our message, not our traceback (--tb=long or -v: all of it)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # tryfirst: before pytest-html writes its report (trylast), so its summary and environment can use ours.
    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: send, never write
        from pytest_dumont.session import xdist

        used_shared = xdist.worker_finish(config, workeroutput)  # the controller bills it; outcomes go too
        if state.ledger.records() or used_shared or config.stash.get(RUN_KEY, None) is not None:
            from pytest_dumont.reporting.session_end import worker_finish

            worker_finish(config, workeroutput)
        return
    if state.ledger.records() or config.stash.get(RUN_KEY, None) is not None:
        from pytest_dumont.reporting.session_end import controller_finish

        controller_finish(config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    output = getattr(node, "workeroutput", None) or {}
    if "dumont_instances" in output or error is not None:
        from pytest_dumont.reporting.session_end import node_down

        node_down(node.config, output if "dumont_instances" in output else None, str(node.gateway.id))


_BLANK_CELLS = tuple(f"<td class=col-{key}></td>" for key, _ in HTML_COLUMNS)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.extend(f'<th class="sortable" data-column-type="{key}">{title}</th>' for key, title in HTML_COLUMNS)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    # A GPU test's call report carries its cells, formatted when its call ended; other rows shown are blank there.
    # pytest-html drops passed setup and teardown rows after building them: they get no cells (it parses each one).
    if report.when == "call" or report.outcome != "passed":
        cells.extend(getattr(report, CELLS, _BLANK_CELLS))


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    # A session with instances has its costs to show; one whose tests only recorded scenario figures, those.
    if run is not None and run.doc is not None and (run.doc["instances"] or run.doc.get("scenario_figures")):
        from pytest_dumont.reporting.html import summary as dumont_summary

        prefix.extend(dumont_summary(run.doc))
