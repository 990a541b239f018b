"""The documentation site: the reference page is what the code says, every error is explained, and it builds."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pytest_dumont import errors

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _gen_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_is_up_to_date() -> None:
    expected = _gen_reference().render()
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/reference.md is stale: run `python docs/gen_reference.py`"


def test_index_options_table_is_up_to_date() -> None:
    committed = (DOCS / "index.md").read_text(encoding="utf-8")
    assert committed == _gen_reference().render_index(committed), (
        "docs/index.md's options table is stale: run `python docs/gen_reference.py`"
    )


def test_reference_page_names_every_fixture_marker_and_option_pytest_knows(pytester: pytest.Pytester) -> None:
    """Asked of pytest itself (``--help``, ``--markers``, ``--fixtures``), not of the tables the page is made from:
    an option, marker or fixture registered outside them is missing from the page and fails here."""
    page = (DOCS / "reference.md").read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    help_text = pytester.runpytest("--help").stdout.str()
    flags = set(re.findall(r"^  (--dumont-[a-z-]+)", help_text, re.M))
    inis = set(re.findall(r"^  (dumont_[a-z_]+) \(", help_text, re.M))
    assert len(flags) > 25 and len(inis) == len(flags)
    assert {"--dumont-json", "--dumont-check-secrets"} <= flags
    for flag in flags:
        assert f"`{flag}" in page and f"`{flag}" in index, flag
    for ini in inis:
        assert f"`{ini}`" in page and f"`{ini}`" in index, ini
    markers = set(
        re.findall(r"^@pytest\.mark\.(real_gpu|dumont_[a-z_]+)", pytester.runpytest("--markers").stdout.str(), re.M)
    )
    assert markers == {"real_gpu", "dumont_offer"}
    for marker in markers:
        assert f"| `{marker}" in page, marker
    fixtures_text = pytester.runpytest("--fixtures").stdout.str()
    fixtures = set(re.findall(r"^(\w+)(?: \[session scope\])? -- .*pytest_dumont/fixtures\.py", fixtures_text, re.M))
    assert {"vast_gpu", "ssh_session", "dumont_phase", "dumont_instance_factory"} <= fixtures
    for name in fixtures:
        assert f"### `{name}`" in page, name


def _error_classes() -> list[type[errors.DumontError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.DumontError) and obj.__module__ == errors.__name__
    ]


def test_troubleshooting_names_every_error_class() -> None:
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    classes = _error_classes()
    assert len(classes) > 20  # the walk found the tree, not an empty module
    missing = [cls.__name__ for cls in classes if f"### `{cls.__name__}`" not in page]
    assert not missing, f"docs/troubleshooting.md has no section for {missing}"


def test_report_screenshot_is_committed_and_shown() -> None:
    image = DOCS / "img" / "report.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.stat().st_size < 300_000
    assert "](img/report.png)" in (DOCS / "reporting.md").read_text(encoding="utf-8")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed (it is in the 'test' extra): the docs site cannot be checked")
        pytest.skip("mkdocs is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("quickstart", "reference", "troubleshooting", "reporting"):
        assert (tmp_path / page / "index.html").is_file()
    assert (tmp_path / "img" / "report.png").is_file()
