"""The secret guard: scan cassettes, reports and logs for API keys, private keys and configured patterns.

Scrubbing happens when cassettes are written; this is the second line, run in CI over the committed files, because
an allow-list scrubber misses what nobody thought of (a new header, a key echoed in a log line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_dumont.secrets.redact import SHAPES, known_secrets

SCANNED_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".html", ".xml", ".txt", ".log", ".md"})


@dataclass(frozen=True)
class Finding:
    """One secret-shaped text at ``path:line``; ``what`` names the shape, never the secret itself."""

    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def files_under(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SCANNED_SUFFIXES)
        elif path.is_file():
            yield path


def scan_text(
    path: Path, text: str, extra: Iterable[re.Pattern[str]] = (), secrets: Iterable[str] = ()
) -> list[Finding]:
    findings: list[Finding] = []
    literal = [s for s in secrets if len(s) >= 8]
    for number, line in enumerate(text.splitlines(), 1):
        findings += [Finding(path, number, shape.name) for shape in SHAPES if shape.pattern.search(line)]
        for pattern in extra:
            if pattern.search(line):
                findings.append(Finding(path, number, f"matches the configured pattern {pattern.pattern!r}"))
        findings += [Finding(path, number, "a secret this session knows") for s in literal if s in line]
    return findings


def scan(paths: Iterable[Path], patterns: Iterable[str] = (), secrets: Iterable[str] = ()) -> list[Finding]:
    """Every finding in the files under ``paths``; the secrets registered in this process are looked for too."""
    extra = [re.compile(p) for p in patterns]
    known = set(secrets) | known_secrets()
    findings: list[Finding] = []
    for file in files_under(paths):
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        findings += scan_text(file, text, extra, known)
    return findings
