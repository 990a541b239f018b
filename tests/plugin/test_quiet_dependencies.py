"""None of our dependencies' warnings reach a user's terminal: asyncssh's DSA deprecation (five warnings from its
import under cryptography 48+, at every emulator start) is silenced where the emulator imports it."""

from __future__ import annotations

import subprocess
import sys

import pytest

DSA = "DSA is deprecated and support will be removed in a future release. Use a more modern signature algorithm."


def _warn_from(module: str) -> subprocess.CompletedProcess[str]:
    """In a fresh interpreter where every warning is an error: load the emulator's asyncssh, then warn as ``module``
    does when cryptography deprecates DSA under it (the suite's cryptography may be too old to do it for real)."""
    code = (
        "import warnings\n"
        "from pytest_dumont.emulator.quiet_asyncssh import asyncssh\n"
        f"warnings.warn_explicit({DSA!r}, UserWarning, 'misc.py', 32, module={module!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_dsa_deprecation_from_asyncssh_is_silenced():
    done = _warn_from("asyncssh.crypto.misc")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_same_warning_from_another_module_still_shows():
    done = _warn_from("someone_elses_module")
    assert done.returncode != 0
    assert "DSA is deprecated" in done.stderr


def test_an_emulator_run_prints_no_warning_even_without_the_warnings_plugin(pytester: pytest.Pytester):
    pytester.makepyfile("def test_gpu(ssh_session):\n    assert ssh_session.run('true', hide=True).ok\n")
    result = pytester.runpytest_subprocess("--dumont-mode=emulator", "-p", "no:warnings", "-W", "error")
    result.assert_outcomes(passed=1)
    assert "Warning" not in result.stdout.str() + result.stderr.str()
