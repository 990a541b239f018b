"""The GitHub workflows (the repository's CI and the documented example) are valid: linted, and say what docs say."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted([*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("examples/github-actions/*.yml")])


def test_there_are_workflows_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in WORKFLOWS}
    assert {".github/workflows/ci.yml", "examples/github-actions/gpu-tests.yml"} <= names


def test_workflows_match_the_github_workflow_schema():
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which(
        "check-jsonschema"
    )
    if checker is None:
        if os.environ.get("CI"):
            pytest.fail("check-jsonschema is missing: it is in the 'test' extra")
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_nothing_when_it_is_installed():
    # actionlint is a Go binary; GitHub CI runs it in its own job (ci.yml). Here it runs when a developer has it.
    linter = shutil.which("actionlint")
    if linter is None:
        pytest.skip("actionlint is not on PATH (the ci.yml 'actionlint' job runs it on GitHub)")
    done = subprocess.run([linter, *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ci_runs_what_ci_run_runs():
    assert "run: bash .ci/run" in (ROOT / ".github/workflows/ci.yml").read_text()


def test_the_example_has_what_the_docs_promise():
    text = (ROOT / "examples/github-actions/gpu-tests.yml").read_text()
    for needle in [
        "matrix:",
        '--dumont-gpu "${{ matrix.gpu }}"',
        "VAST_API_KEY: ${{ secrets.VAST_API_KEY }}",
        "--dumont-budget",
        "--dumont-json",
        "--html",
        "actions/upload-artifact@v4",
        "actions/download-artifact@v4",
        "dumont report merge",
        '>> "$GITHUB_STEP_SUMMARY"',
        "dumont reap",
    ]:
        assert needle in text, needle
    reap_step = text[text.index("- name: Destroy anything left running") :]
    assert reap_step.splitlines()[1].strip() == "if: always()"
    assert text in (ROOT / "docs/ci.md").read_text()  # the docs show the same file, not a drifting copy


def test_the_release_workflow_builds_checks_and_publishes_a_tag_through_trusted_publishing():
    import yaml

    text = (ROOT / ".github/workflows/release.yml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow[True] == {"push": {"tags": ["v*"]}}  # YAML reads the key `on` as True; tags only
    assert workflow["permissions"] == {"contents": "read"}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    build_runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert "python -m build" in build_runs  # the sdist and the wheel
    assert 'dist/pytest_dumont-${version}.tar.gz" "dist/pytest_dumont-${version}-py3-none-any.whl' in build_runs
    assert "twine check --strict dist/*" in build_runs
    # Only the publishing job may ask for an OpenID Connect token, and it holds no stored secret.
    assert "permissions" not in build
    assert publish["needs"] == "build" and publish["permissions"] == {"id-token": "write"}
    assert publish["steps"][-1]["uses"].startswith("pypa/gh-action-pypi-publish@")
    assert "secrets." not in text and "password" not in text


def test_the_version_is_written_in_one_place():
    import re

    import pytest_dumont

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert 'version = { attr = "pytest_dumont.__version__" }' in pyproject
    assert not re.search(r"^version = \"", pyproject, re.M)  # no second copy to forget
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", pytest_dumont.__version__)
    assert f'__version__ = "{pytest_dumont.__version__}"' in (ROOT / "pytest_dumont/__init__.py").read_text()
