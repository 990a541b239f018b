"""`dumont report render` and `dumont report pdf` as users run them: files, messages, exit codes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pytest_dumont.provisioning.records import Hold, InstanceRecord, PhaseTiming
from pytest_dumont.reporting import document
from pytest_dumont.vast.models import Offer, StatusChange

OFFER = Offer.from_api(
    {"id": 29292839, "gpu_name": "RTX 4090", "dph_base": 0.1647, "storage_cost": 0.1512, "geolocation": "BC, CA"}
)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    record = InstanceRecord(29441924, "dumont-x-1", OFFER, 20, 0.0, 2.85, 75.62, 87.98, 98.98)
    record.phases.append(PhaseTiming("wait_running", 2.85, 72.77, instance_id=29441924))
    record.phases.append(PhaseTiming("load model", 88.0, 4.18, kind="user"))
    record.timeline = [StatusChange(0.0, "unknown"), StatusChange(72.8, "running")]
    record.holds = [Hold("t::a", 87.98, 92.2)]
    doc = document.build([document.instance_entry(record, 100.0)], {}, session={"id": "s"})
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    return path


def test_render_markdown_to_stdout(run_dumont, report):
    done = run_dumont("report", "render", str(report))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## pytest-dumont: 1 instance(s)")
    assert "instance 29441924" in done.stdout and "load model" in done.stdout


def test_render_html_to_a_file(run_dumont, report, tmp_path):
    done = run_dumont("report", "render", str(report), "--format", "html", "-o", str(tmp_path / "out" / "r.html"))
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "out" / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "load model" in page


@pytest.mark.parametrize("action", ["render", "pdf"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "is not JSON"),
        ('{"hello": 1}', 'is not a pytest-dumont JSON report (no "schema": "pytest-dumont-report")'),
        (None, "cannot read"),
    ],
)
def test_a_file_that_is_not_a_report_is_a_usage_error(run_dumont, tmp_path, action, content, message):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    done = run_dumont("report", action, str(path), "-o", str(tmp_path / "out.pdf"))
    assert done.returncode == 2
    assert f"dumont report {action}: " in done.stderr and message in done.stderr
    assert not (tmp_path / "out.pdf").exists()


def test_an_unknown_report_action_is_a_usage_error(run_dumont):
    done = run_dumont("report", "publish")
    assert done.returncode == 2 and "invalid choice: 'publish'" in done.stderr


def test_pdf_without_chromium_says_how_to_get_it(run_dumont, report, tmp_path, dumont_env):
    python_only = tmp_path / "bin"
    python_only.mkdir()
    done = run_dumont("report", "pdf", str(report), "-o", str(tmp_path / "r.pdf"), env={"PATH": str(python_only)})
    assert done.returncode == 2
    assert "needs headless Chromium on PATH (apt-get install chromium)" in done.stderr


def test_pdf_through_headless_chromium(run_dumont, report, tmp_path):
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    done = run_dumont("report", "pdf", str(report), "-o", str(tmp_path / "r.pdf"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
