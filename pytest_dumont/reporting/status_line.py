"""A live status line while an instance boots: its id, status and the seconds since the create call."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest


class StatusLine:
    """On a terminal, one line rewritten in place, its seconds advancing with every call; in a CI log, one line per
    status change. The lifecycle may call it at every poll with the same status: a repeat costs one write on a
    terminal and nothing in a log, and an instance's line ends once, at ``running``."""

    def __init__(
        self, write: Callable[..., None], *, rewrite: bool, quiet: Callable[[], AbstractContextManager[Any]]
    ) -> None:
        self._write = write
        self._rewrite = rewrite
        self._quiet = quiet
        self._width = 0
        self._last: tuple[int, str] | None = None  # the instance and status of the last call

    def __call__(self, instance_id: int, status: str, elapsed: float) -> None:
        repeat = self._last == (instance_id, status)
        self._last = (instance_id, status)
        if repeat and (status == "running" or not self._rewrite):
            return  # its line is ended, or a log already has it
        text = f"dumont: instance {instance_id} {status} after {elapsed:.1f} s"
        with self._quiet():
            if self._rewrite:
                self._write("\r" + text.ljust(self._width))
                self._width = len(text)
                if status == "running":
                    self._write("\n")
                    self._width = 0
            else:
                # After the progress line's file name: start on a line of our own.
                self._write(("" if self._width else "\n") + text + "\n")
                self._width = 0 if status == "running" else len(text)

    @classmethod
    def for_config(cls, config: pytest.Config) -> StatusLine | None:
        """The line for this session's terminal, or None (xdist workers and ``-p no:terminal`` have none)."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or config.get_verbosity() < 0:
            return None
        capman = config.pluginmanager.get_plugin("capturemanager")
        quiet: Callable[[], AbstractContextManager[Any]] = (
            capman.global_and_fixture_disabled if capman is not None else nullcontext
        )
        return cls(reporter.write, rewrite=reporter.isatty, quiet=quiet)
