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
