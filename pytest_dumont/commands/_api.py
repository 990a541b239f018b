"""The API arguments every command that calls Vast.ai takes, with the plugin's own option names."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

TEARDOWN_RETRY = "teardown-retry-seconds"


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dumont-api-url``, ``--dumont-api-key-file`` (``--url`` and ``--api-key-file`` stay as short aliases) and
    ``--dumont-teardown-retry-seconds``, the plugin's option of that name, for the commands that destroy."""
    from pytest_dumont.session.settings import OPTIONS_BY_NAME

    parser.add_argument(
        "--dumont-api-url",
        "--url",
        dest="url",
        metavar="URL",
        help="API base URL (default: $VAST_URL, else https://console.vast.ai)",
    )
    parser.add_argument(
        "--dumont-api-key-file",
        "--api-key-file",
        dest="api_key_file",
        metavar="PATH",
        help="file holding the key when $VAST_API_KEY is unset",
    )
    spec = OPTIONS_BY_NAME[TEARDOWN_RETRY]
    parser.add_argument(spec.flag, dest=spec.dest, metavar=spec.metavar, help=spec.help_line)


def teardown_retry_seconds(args: argparse.Namespace, environ: Mapping[str, str]) -> float:
    """How long each destroy is retried: the flag, else its environment variable, else the plugin's default.

    Raises ValueError naming the flag or the variable and what it expects.
    """
    from pytest_dumont.session.settings import OPTIONS_BY_NAME

    spec = OPTIONS_BY_NAME[TEARDOWN_RETRY]
    text, where = getattr(args, spec.dest), spec.flag
    if text is None and spec.env and environ.get(spec.env):
        text, where = environ[spec.env], f"${spec.env}"
    if text is None:
        return float(spec.parse(spec.default))
    try:
        return float(spec.parse(text))
    except ValueError as exc:
        raise ValueError(f"{where}={text!r}: {exc}") from None
