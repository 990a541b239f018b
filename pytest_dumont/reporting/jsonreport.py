"""Write and read the JSON report; refuse a schema this version does not know, with a message that says so."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pytest_dumont.errors import ReportError as ReportError
from pytest_dumont.reporting.document import SCHEMA, SCHEMA_VERSION, Doc, prices_of, projections, totals
from pytest_dumont.reporting.phases import instance_rows, row_entries


def umask() -> int:
    """The process's umask, read without changing it where Linux says it (``os.umask`` sets it, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write atomically (a crash never leaves half a report) with the mode any file gets under the user's umask
    (0644 usually, as pytest-html's report: a temporary file alone would be 0600); raise ReportError naming the
    path when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None


def write(path: Path, doc: Doc) -> None:
    # Compact on purpose: indent= forces json's pure-Python encoder, several times slower on big runs.
    write_text(path, json.dumps(doc, separators=(",", ":")) + "\n")


def read(path: Path) -> Doc:
    """A report document from ``path``, checked to be one this version understands."""
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReportError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ReportError(f'{path} is not a pytest-dumont JSON report (no "schema": "{SCHEMA}")')
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema_version {version!r}; this pytest-dumont reads version {SCHEMA_VERSION} "
            "(upgrade pytest-dumont, or re-run the job that wrote it with this version)"
        )
    for entry in doc.get("instances") or []:
        if "rows" not in entry:  # written before the report held its phase tables: made once, here
            entry["rows"] = row_entries(instance_rows(entry))
    return doc


def merge(docs: list[Doc], labels: list[str] | None = None) -> Doc:
    """One document from several jobs' documents: instances and tests concatenated (each test tagged with its job:
    ``labels``, one per document, or each session's ``job``), totals and projections recomputed."""
    if not docs:
        raise ReportError("nothing to merge: give at least one JSON report")
    names = labels if labels is not None else [_job_of(d, i) for i, d in enumerate(docs)]
    instances = [i for d in docs for i in d["instances"]]
    tests = [{**t, "job": name} for d, name in zip(docs, names, strict=True) for t in d["tests"]]
    merged = dict(docs[0])
    merged["sessions"] = [s for d in docs for s in d["sessions"]]
    merged["instances"] = instances
    merged["tests"] = tests
    merged["totals"] = totals(instances, tests)
    merged["hook_errors"] = [e for d in docs for e in d.get("hook_errors", [])]
    merged["scenario_figures"] = [f for d in docs for f in d.get("scenario_figures", [])]  # older reports have none
    runs_per_day = (docs[0].get("projections") or {}).get("runs_per_day") or 10.0
    merged["projections"] = projections(merged, prices_of(docs[0]), float(runs_per_day))
    return merged


def _job_of(doc: Doc, index: int) -> str:
    jobs = [s.get("job") for s in doc.get("sessions", [])]
    return str(jobs[0]) if jobs and jobs[0] else f"report {index + 1}"
