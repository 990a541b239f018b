"""``pytest --fixtures`` shows every public fixture of the plugin with a line that says what it gives."""

from __future__ import annotations

import pytest

FIXTURES = {
    "vast_gpu": "A running Vast.ai instance with SSH up (RTX 4090 by default)*",
    "ssh_session": "A connected fabric ``Connection`` to ``vast_gpu`` as root*",
    "dumont_phase": "Time a step of your own*",
    "dumont_instance_factory": "Fresh instances of the test's own, never shared*",
    "dumont_settings [[]session scope[]]": "The session's resolved pytest-dumont settings*",
    "dumont_api [[]session scope[]]": "The Vast.ai API of this session*",
    "dumont_pool [[]session scope[]]": "Rents the session's instances on first use and destroys every one*",
}


def test_every_fixture_is_listed_with_its_line(pytester: pytest.Pytester):
    result = pytester.runpytest("--fixtures")
    assert result.ret == pytest.ExitCode.OK
    for name, line in FIXTURES.items():
        result.stdout.fnmatch_lines([f"{name} -- *pytest_dumont/fixtures.py:*", f"    {line}"])


def test_help_lists_every_option_with_its_ini_twin(pytester: pytest.Pytester):
    from pytest_dumont.session.settings import OPTIONS

    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for spec in [*OPTIONS, "--dumont-json"]:
        flag, dest = (spec, "dumont_json") if isinstance(spec, str) else (spec.flag, spec.dest)
        assert f"  {flag}" in text, flag
        assert f"  {dest} (" in text, dest
