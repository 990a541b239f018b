"""pytest-dumont as another project uses it: the built wheel, a fresh virtual environment, the example's own tests.

A file missing from the wheel, an undeclared dependency or an import of this repository's test code fails here.
The venv is fresh and not ``--system-site-packages`` (that would hide a missing dependency): pip resolves the
wheel's dependencies from the index as a user's pip would; its HTTP cache keeps a second run fast. Deselect
locally with ``-m "not wheel"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "other-repo"

pytestmark = pytest.mark.wheel


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def clean_env(venv: Path) -> dict[str, str]:
    """The venv first on PATH; nothing that points back at this repository or at a key."""
    drop = ("VAST_", "DUMONT_", "PYTHON", "PYTEST_", "VIRTUAL_ENV", "GITHUB_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the venv's python, a copy of the example outside this repository) with the wheel and the example installed."""
    base = tmp_path_factory.mktemp("other-repo")
    source = base / "source"  # a clean copy: a stale build/ or .egg-info in the tree must not reach the wheel
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*cache")
    )
    wheels = base / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)], cwd=base)
    (wheel,) = wheels.glob("pytest_dumont-*.whl")
    venv = base / "venv"
    # No pip of its own (ensurepip took a third of this set-up): this pip installs into it with --python, resolving
    # from the index just the same.
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    project = base / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("cassettes", "__pycache__", ".pytest_cache"))
    env = clean_env(venv)
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    run([*install, f"{wheel}[emulator]", str(project)], cwd=base, env=env)
    return python, project


def test_the_package_comes_from_the_wheel_with_its_data_and_without_the_tests(installed):
    python, project = installed
    code = "import pytest_dumont; print(pytest_dumont.__file__)"
    done = run([str(python), "-c", code], project, clean_env(python.parents[1]))
    package = Path(done.stdout.strip()).parent
    assert package.is_relative_to(python.parents[1])
    assert (package / "py.typed").is_file() and list((package / "emulator" / "data").glob("*.json"))
    assert not (package.parent / "tests").exists()  # the repository's tests are not shipped


def test_the_examples_gpu_tests_pass_on_the_emulator(installed):
    python, project = installed
    done = run(
        [str(python), "-m", "pytest", "--dumont-mode=emulator", "--model-name=mini", "-p", "no:cacheprovider"],
        project,
        clean_env(python.parents[1]),
    )
    assert "3 passed" in done.stdout
    assert "all instances destroyed" in done.stdout


def test_in_replay_the_gpu_tests_skip_naming_how_to_record(installed):
    python, project = installed
    done = run([str(python), "-m", "pytest", "-rs", "-p", "no:cacheprovider"], project, clean_env(python.parents[1]))
    assert "1 passed, 2 skipped" in done.stdout
    assert (
        "record it with `pytest --dumont-mode=emulator --dumont-record-mode=rewrite tests/test_gpu.py::" in done.stdout
    )


def test_the_dumont_command_is_installed(installed):
    python, project = installed
    done = run([str(python.parent / "dumont"), "--help"], project, clean_env(python.parents[1]))
    assert "offers" in done.stdout and "reap" in done.stdout


def test_the_scenario_library_replays_from_the_recordings_in_the_wheel(installed, tmp_path):
    python, _ = installed
    done = run(
        [str(python), "-m", "pytest", "--pyargs", "pytest_dumont.scenarios", "-p", "no:cacheprovider"],
        tmp_path,  # no cassettes/ here: the package's own are the ones that replay
        clean_env(python.parents[1]),
    )
    assert "5 passed" in done.stdout
    assert "5 test(s) replayed from" in done.stdout and "site-packages/pytest_dumont/scenarios/cassettes" in done.stdout
