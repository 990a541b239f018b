"""docs/remote.md shows the GitHub Actions example as it is, and the example does what the page promises."""

from __future__ import annotations

from pathlib import Path

from pytest_dumont.remote.tree import DEFAULT_EXCLUDES

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples/github-actions/remote-gpu-tests.yml"
PAGE = ROOT / "docs/remote.md"


def test_the_page_shows_the_workflow_file_itself():
    assert WORKFLOW.read_text() in PAGE.read_text()


def test_the_workflow_runs_the_tests_remotely_keeps_the_reports_and_reaps():
    text = WORKFLOW.read_text()
    assert "runs-on: ubuntu-latest" in text
    for needle in ["--dumont-remote", "--dumont-budget", "--junitxml", "--html", "--dumont-json"]:
        assert needle in text, needle
    assert "VAST_API_KEY: ${{ secrets.VAST_API_KEY }}" in text
    upload = text[text.index("- name: Upload the reports") :]
    assert upload.splitlines()[1].strip() == "if: always()"
    reap = text[text.index("- name: Destroy anything left running") :]
    assert reap.splitlines()[1].strip() == "if: always()"
    assert "dumont reap" in reap


def test_the_page_lists_the_exclude_list_the_code_uses():
    page = PAGE.read_text()
    listed = page[page.index("**Without git**") : page.index("- Always, when present")]
    assert all(f"`{name}`" in listed for name in DEFAULT_EXCLUDES)
