"""Record and replay: HTTP cassettes (vcrpy's YAML), SSH transcripts, and the session's provisioning.

Layout under the cassette directory (``cassettes/`` at the rootdir by default)::

    <test module>/<Class.test>.ssh.yaml    every SSH run/put/get of one test; its presence means "recorded"
    <test module>/<Class.test>.yaml        vcrpy cassette of the HTTP the test body itself made, if any
    _provisioning/<gpu>-<hash>.yaml        search, create, polls, SSH readiness and destroy of one request

This package is imported only when a run replays or records; its modules import vcrpy, fabric and YAML inside the
functions that need them, so a replay run whose GPU tests have no cassette stays as light as a plain one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_dumont.cassettes.session import CassetteSession

CASSETTES_KEY = pytest.StashKey["CassetteSession"]()


def cassette_session(config: pytest.Config) -> CassetteSession | None:
    """The session's cassettes, or None when this run neither replays nor records."""
    return config.stash.get(CASSETTES_KEY, None)
