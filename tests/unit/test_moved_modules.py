"""Import paths from before the folders keep working for a release, with a DeprecationWarning naming the new one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_dumont._moved import FOLDER_WAS_MODULE, MOVED


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", code], capture_output=True, text=True
    )


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_module_path_is_the_new_module_and_warns(old, new):
    code = (
        f"import importlib\nold = importlib.import_module('pytest_dumont.{old}')\n"
        f"new = importlib.import_module('pytest_dumont.{new}')\n"
        "print(all(getattr(old, k) is v for k, v in vars(new).items() if not k.startswith('__')))\n"
    )
    result = _run(code)
    assert result.stdout.strip() == "True", result.stderr
    assert f"pytest_dumont.{old} moved to pytest_dumont.{new}" in result.stderr


def test_names_that_left_a_moved_module_are_still_found_there():
    result = _run(
        "from pytest_dumont.models import PhaseTiming, Offer\nfrom pytest_dumont.reaper import reap, LedgerFile\n"
        "from pytest_dumont.instances import InstanceFactory\nfrom pytest_dumont.resources import ApiEndpoint\n"
        "print(PhaseTiming.__module__, reap.__module__, InstanceFactory.__module__, ApiEndpoint.__module__)"
    )
    assert result.stdout.split() == [
        "pytest_dumont.provisioning.records",
        "pytest_dumont.safety.reap",
        "pytest_dumont.provisioning.factory",
        "pytest_dumont.session.resources",
    ], result.stderr


@pytest.mark.parametrize(("folder", "name"), [("session", "SESSION_KEY"), ("ssh", "SSHTarget"), ("safety", "arm")])
def test_a_module_that_became_a_folder_still_gives_its_names(folder, name):
    result = _run(f"from pytest_dumont.{folder} import {name}\nprint('ok')")
    assert result.stdout.strip() == "ok", result.stderr
    assert f"pytest_dumont.{folder}.{name} moved to pytest_dumont.{FOLDER_WAS_MODULE[folder]}.{name}" in result.stderr


def test_a_name_no_module_ever_had_is_an_attribute_error():
    result = _run("from pytest_dumont.session import no_such_name")
    assert "ImportError: cannot import name 'no_such_name'" in result.stderr


def test_the_plugin_itself_uses_no_old_path():
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::DeprecationWarning",
            "-c",
            "import pytest_dumont.plugin, pytest_dumont.fixtures",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
