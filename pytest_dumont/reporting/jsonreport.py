"""Write and read the JSON report; refuse a schema this version does not know, with a message that says so."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pytest_dumont.errors import ReportError as ReportError
from pytest_dumont.reporting.document import SCHEMA, SCHEMA_VERSION, Doc, projections, reference_prices, totals


def write_text(path: Path, text: str) -> None:
    """Write atomically (a crash never leaves half a report); raise ReportError naming the path when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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
    return doc


def merge(docs: list[Doc]) -> Doc:
    """One document from several jobs' documents: instances and tests concatenated, totals recomputed."""
    if not docs:
        raise ReportError("nothing to merge: give at least one JSON report")
    instances = [i for d in docs for i in d["instances"]]
    tests = [t for d in docs for t in d["tests"]]
    merged = dict(docs[0])
    merged["sessions"] = [s for d in docs for s in d["sessions"]]
    merged["instances"] = instances
    merged["tests"] = tests
    merged["totals"] = totals(instances, tests)
    longest = max(instances, key=lambda e: e["cost"]["wall_seconds"], default=None)
    dph = longest["cost"]["dph_total"] if longest else 0.0
    merged["projections"] = projections(dph, merged["totals"]["wall_seconds"], reference_prices())
    merged["hook_errors"] = [e for d in docs for e in d.get("hook_errors", [])]
    merged["scenario_figures"] = [f for d in docs for f in d.get("scenario_figures", [])]  # older reports have none
    return merged
