"""Scrubbing by construction: what a cassette would store passes through here first, and secrets do not.

Removed: the ``Authorization`` header and cookies, the ``api_key`` query parameter, JSON fields that hold keys
(``api_key``, ``instance_api_key``, ``ssh_key``, ...), OpenSSH public keys and private key blocks anywhere in a text,
every secret the session registered (the API key, instance keys), and the configured ``--dumont-secret-pattern``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pytest_dumont.secrets.redact import REDACTED, redact

SCRUBBED = REDACTED
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"})
SECRET_QUERY = frozenset({"api_key", "apikey", "token", "access_token"})
SECRET_FIELDS = frozenset(
    {"api_key", "instance_api_key", "ssh_key", "ssh_keys", "public_key", "private_key", "jupyter_token", "password"}
)


class Scrubber:
    """Removes secrets from texts, headers, URLs and JSON bodies; ``pattern`` is the user's extra regex."""

    def __init__(self, pattern: str | None = None) -> None:
        self.pattern = re.compile(pattern) if pattern else None

    def text(self, value: str) -> str:
        value = redact(value)  # the secret shapes and the registered secrets
        if self.pattern is not None:
            value = self.pattern.sub(SCRUBBED, value)
        return value

    def headers(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for name, value in headers.items():
            if name.lower() in SECRET_HEADERS:
                continue
            kept[name] = [self.text(str(v)) for v in value] if isinstance(value, list) else self.text(str(value))
        return kept

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in SECRET_QUERY]
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
        return self.text(clean)

    def body(self, body: str | None) -> str | None:
        """A JSON body with secret fields blanked (structure kept, so replay still parses it); else scrubbed text."""
        if not body:
            return body
        try:
            data = json.loads(body)
        except ValueError:
            return self.text(body)
        return self.text(json.dumps(self.json(data), separators=(",", ":")))

    def json(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: (SCRUBBED if k.lower() in SECRET_FIELDS and v not in (None, "", [], {}) else self.json(v))
                for k, v in data.items()
            }
        if isinstance(data, list):
            return [self.json(v) for v in data]
        return data
