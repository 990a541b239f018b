"""``--dumont-check-secrets``: after everything is written, scan what this run wrote for secrets; a hit fails the run.

Registered as a plugin only when the option is on. Its ``pytest_sessionfinish`` is a wrapper, so it runs after
every report writer (pytest-html writes its file in its own ``pytest_sessionfinish``).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.session.state import SESSION_KEY

FINDINGS_KEY = pytest.StashKey[list[str]]()


def artifacts(config: pytest.Config) -> list[Path]:
    """The cassette folder and every report file this run was asked to write."""
    state = config.stash[SESSION_KEY]
    candidates = [
        config.rootpath / state.settings.cassette_dir,
        getattr(config.option, "htmlpath", None),
        getattr(config.option, "xmlpath", None),
        Path(state.settings.json_path).expanduser() if state.settings.json_path else None,  # where it is written
        os.environ.get("GITHUB_STEP_SUMMARY"),
    ]
    return [Path(str(c)) for c in candidates if c and Path(str(c)).exists()]


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, Any, Any]:
    result = yield
    config = session.config
    if getattr(config, "workeroutput", None) is not None:
        return result  # an xdist worker writes no report; the controller checks
    from pytest_dumont.secrets.guard import scan

    state = config.stash[SESSION_KEY]
    patterns = [state.settings.secret_pattern] if state.settings.secret_pattern else []
    findings = [str(f) for f in scan(artifacts(config), patterns)]
    config.stash[FINDINGS_KEY] = findings
    if findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    findings = config.stash.get(FINDINGS_KEY, None)
    if findings is None:
        return
    if not findings:
        terminalreporter.write_line("dumont check-secrets: no secret in the cassettes and reports of this run")
        return
    terminalreporter.write_sep("=", f"dumont check-secrets: {len(findings)} secret(s) found", red=True)
    for finding in findings:
        terminalreporter.write_line(finding, red=True)
    terminalreporter.write_line("scrub these files and rotate the key before sharing them", red=True)
