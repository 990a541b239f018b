"""Secrets known at run time (the API key, instance keys) and secret-shaped text, replaced by ``***`` in anything
we keep: messages, log lines, reports, cassettes."""

from __future__ import annotations

import re

_REDACTED = "***"

# Secrets registered at run time (the API key, instance keys). ``redact`` removes them from any text we keep.
_known_secrets: set[str] = set()

# Shapes that are secrets whatever their value: private key blocks and bearer tokens.
_SECRET_SHAPES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # ``api_key=VALUE`` (a query string, an environment dump); not the ``VAST_API_KEY=...`` placeholder of a hint.
    re.compile(r"(?i)(api_key=)(?!\.\.\.(?![^&\s\"'`]))[^&\s\"']+"),
)


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` removes it from any message, log line or report."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and every secret-shaped token replaced by ``***``."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    for shape in _SECRET_SHAPES:
        text = shape.sub(lambda m: (m.group(1) if m.groups() else "") + _REDACTED, text)
    return text


def known_secrets() -> frozenset[str]:
    """The secrets registered so far (the guard looks for them in files)."""
    return frozenset(_known_secrets)
