"""pytest-dumont: GPU integration tests on rented Vast.ai machines, with guaranteed teardown and a cost report.

PYTEST_DONT_REWRITE: this package holds no test asserts. Installed in editable mode it is imported at pytest's start
without assertion rewriting, and every in-process ``pytester`` run would then warn that it cannot rewrite it.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from pytest_dumont import _moved

_moved.install()  # old import paths (``pytest_dumont.instances`` ...) keep working for a release, with a warning
