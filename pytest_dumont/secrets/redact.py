"""What a secret looks like, and the secrets known at run time: replaced by ``***`` in anything we keep.

``SHAPES`` is the one list of secret shapes. ``redact`` (messages, log lines, reports), the cassette scrubber and
the secret guard (``dumont check-secrets``) all read it: the first two replace what matches, the guard reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REDACTED = "***"
_NOT_SCRUBBED = r"(?!\*\*\*)"  # a value already replaced by *** is no longer a secret


@dataclass(frozen=True)
class SecretShape:
    """A text that is a secret whatever its value. A ``keep`` group stays (``Bearer ``); the rest becomes ``***``.

    ``replace`` is False for shapes that only show that a secret was nearby (an ``Authorization`` header's name):
    the guard reports them, the redactor has nothing to replace.
    """

    name: str
    pattern: re.Pattern[str]
    replace: bool = True

    def redact(self, text: str) -> str:
        return self.pattern.sub(lambda m: (m.group("keep") or "") + REDACTED, text)


SHAPES: tuple[SecretShape, ...] = (
    SecretShape(
        "private key",
        re.compile(
            r"(?P<keep>)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
        ),
    ),
    SecretShape("bearer token", re.compile(rf"(?i)(?P<keep>\bbearer\s+){_NOT_SCRUBBED}[A-Za-z0-9._~+/=-]{{8,}}")),
    SecretShape("api_key parameter", re.compile(rf"(?i)(?P<keep>\bapi_key=){_NOT_SCRUBBED}[^&\s\"']{{8,}}")),
    SecretShape(
        "api key field",
        re.compile(rf"(?i)(?P<keep>[\"']?(?:instance_)?api_key[\"']?\s*[:=]\s*[\"']){_NOT_SCRUBBED}[^\"']{{8,}}"),
    ),
    SecretShape(
        "OpenSSH public key",
        re.compile(r"(?P<keep>\b(?:ssh|ecdsa-sha2|sk-ssh)-[A-Za-z0-9@.-]+\s+)AAAA[0-9A-Za-z+/]+=*"),
    ),
    SecretShape(
        "Authorization header",
        re.compile(r"(?im)(?P<keep>)^\s*-?\s*Authorization:\s*$|[\"']Authorization[\"']\s*:"),
        replace=False,
    ),
)
_REPLACED = tuple(shape for shape in SHAPES if shape.replace)

# Secrets registered at run time (the API key, instance keys). ``redact`` removes them from any text we keep.
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` removes it from any message, log line or report."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and every secret-shaped token replaced by ``***``."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for shape in _REPLACED:
        text = shape.redact(text)
    return text


def known_secrets() -> frozenset[str]:
    """The secrets registered so far (the guard looks for them in files)."""
    return frozenset(_known_secrets)
