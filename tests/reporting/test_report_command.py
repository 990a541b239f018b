"""``dumont report merge`` as users run it: a subprocess, its files, its messages and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from test_cost_document import doc_with, seed_record

DUMONT = [sys.executable, "-m", "pytest_dumont.cli"]


def test_merge_writes_one_json_markdown_and_html(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(doc_with(seed_record())))
    done = subprocess.run(
        [*DUMONT, "report", "merge", "a.json", "b.json", "-o", "out/all"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "2 report(s), 2 instance(s), 4 test(s)" in done.stdout
    merged = json.loads((tmp_path / "out" / "all.json").read_text())
    assert merged["totals"]["instances"] == 2 and len(merged["sessions"]) == 2
    assert (tmp_path / "out" / "all.md").read_text().startswith("## pytest-dumont (merged): 2 instance(s)")
    assert "<svg" in (tmp_path / "out" / "all.html").read_text()


def test_merge_refuses_an_unknown_schema_version_by_name(tmp_path):
    doc = doc_with(seed_record())
    doc["schema_version"] = 2
    (tmp_path / "new.json").write_text(json.dumps(doc))
    done = subprocess.run([*DUMONT, "report", "merge", "new.json"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert "new.json has schema_version 2; this pytest-dumont reads version 1" in done.stderr
    assert not (tmp_path / "dumont-report.json").exists()


def test_a_leak_in_any_job_makes_merge_exit_1(tmp_path):
    record = seed_record()
    record.destroyed_at = None
    (tmp_path / "a.json").write_text(json.dumps(doc_with(record)))
    done = subprocess.run([*DUMONT, "report", "merge", "a.json"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "leaked: [29441924]" in done.stdout


def test_merge_names_each_tests_job_and_writes_files_as_the_umask_says(tmp_path):
    for name in ("rtx4090.json", "a100.json"):
        (tmp_path / name).write_text(json.dumps(doc_with(seed_record())))
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        done = subprocess.run(
            ["sh", "-c", f"umask {umask:03o} && exec \"$@\"", "sh", *DUMONT, "report", "merge", "rtx4090.json",
             "a100.json", "-o", f"out{umask:o}/all"],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        for suffix in (".json", ".md", ".html"):
            assert (tmp_path / f"out{umask:o}" / f"all{suffix}").stat().st_mode & 0o777 == mode, (suffix, oct(umask))
    text = (tmp_path / "out22" / "all.md").read_text()
    assert "| job | test | outcome | GPU | held (s) | cost |" in text
    assert "| rtx4090 | `t::a` |" in text and "| a100 | `t::a` |" in text
    page = (tmp_path / "out22" / "all.html").read_text()
    assert "<th>job</th>" in page and "<td>a100</td><td>t::a</td>" in page
    assert {t["job"] for t in json.loads((tmp_path / "out22" / "all.json").read_text())["tests"]} == {"rtx4090", "a100"}
