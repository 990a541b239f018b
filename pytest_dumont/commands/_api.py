"""The API arguments every command that calls Vast.ai takes, with the plugin's own option names."""

from __future__ import annotations

import argparse


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dumont-api-url`` and ``--dumont-api-key-file`` (``--url`` and ``--api-key-file`` stay as short aliases)."""
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
