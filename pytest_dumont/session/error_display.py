"""A ``DumontError`` reaching pytest is shown as its message, not as a traceback through the plugin.

Our messages say what went wrong and what to do; sixty lines of ``plugin.py``, ``prewarm.py`` and the provisioner
above them bury that. By default a test's report keeps the error's class and message (and, for an error raised in
the test's own code, the line it came from); ``--tb=long`` (or any ``--tb`` other than the default) and ``-v`` show
pytest's usual traceback. The same error object reaching several tests (a failed rental is one failure for every
test that asked for it) is written out once and named in the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

import pytest_dumont

PACKAGE = Path(pytest_dumont.__file__).resolve().parent
HINT = "(pytest-dumont: --tb=long or -v shows the traceback)"
_SHOWN = pytest.StashKey[dict[int, tuple[BaseException, str]]]()  # id(error) -> (error, first test it was shown for)


def wants_traceback(config: pytest.Config) -> bool:
    """Any ``--tb`` other than the default, or ``-v``: the user asked for pytest's own display."""
    return config.getoption("tbstyle", "auto") != "auto" or config.get_verbosity() > 0


def shorten(item: pytest.Item, call: pytest.CallInfo[Any], report: pytest.TestReport, also: Sequence[str] = ()) -> None:
    """Replace ``report``'s traceback by the error's message (``call.excinfo`` holds a ``DumontError``); ``also``:
    lines said after it."""
    excinfo = call.excinfo
    if excinfo is None or wants_traceback(item.config):
        return
    error = excinfo.value
    shown = item.config.stash.setdefault(_SHOWN, {})
    first = shown.setdefault(id(error), (error, item.nodeid))[1]  # the error is kept so that its id stays its own
    name = type(error).__name__
    message = str(error).splitlines() or [""]
    if first != item.nodeid:
        lines = [f"{name}: {message[0]}", f"(the same error as {first}, shown in full there)"]
    else:
        lines = [f"{name}: {message[0]}", *message[1:], *also]
        where = _user_line(excinfo, item.config.rootpath)
        if where:
            lines.append(f"raised from {where}")
        lines.append(HINT)
    longrepr = excinfo.getrepr(style="value", chain=False)  # pytest's own "value" style, as pytest.fail(pytrace=False)
    shown_lines = cast("list[str]", longrepr.reprtraceback.reprentries[-1].lines)  # the one entry, a list
    shown_lines[:] = lines
    report.longrepr = longrepr


def _user_line(excinfo: pytest.ExceptionInfo[BaseException], root: Path) -> str | None:
    """``tests/test_x.py:12`` of the innermost frame of the user's own code, when the error came through it."""
    for entry in reversed(excinfo.traceback):
        path = Path(str(entry.path))
        if PACKAGE in path.parents or "site-packages" in path.parts or root not in path.parents:
            continue
        return f"{path.relative_to(root)}:{entry.lineno + 1}"
    return None
