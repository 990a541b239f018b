"""The plugin's options as the ``dumont`` commands take them: declared from ``settings.OPTIONS`` and resolved by the
plugin's own ``option_value`` (flag > environment > default; a command reads no ini file), so a value means the same,
and is refused with the same message, in ``pytest`` and in ``dumont``."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_dumont.session.settings import Secret

TEARDOWN_RETRY = "teardown-retry-seconds"

# Short aliases the commands accepted before they took the plugin's own names.
ALIASES = {"api-url": "--url", "api-key-file": "--api-key-file"}


def add_option_arguments(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """The plugin's flags named (``settings.OPTIONS`` names), each as text with its help and default."""
    from pytest_dumont.session.settings import OPTIONS_BY_NAME

    for name in names:
        spec = OPTIONS_BY_NAME[name]
        flags = [spec.flag, ALIASES[name]] if name in ALIASES else [spec.flag]
        parser.add_argument(*flags, dest=spec.dest, default=None, metavar=spec.metavar, help=spec.help_line)


def add_api_arguments(parser: argparse.ArgumentParser, *, destroys: bool = False) -> None:
    """``--dumont-api-url`` and ``--dumont-api-key-file`` (``--url`` and ``--api-key-file`` stay as short aliases);
    with ``destroys``, ``--dumont-teardown-retry-seconds`` too, for the commands that destroy."""
    add_option_arguments(
        parser, ("api-url", "api-key-file", TEARDOWN_RETRY) if destroys else ("api-url", "api-key-file")
    )


def teardown_retry_seconds(args: argparse.Namespace, environ: Mapping[str, str]) -> float:
    """How long each destroy is retried: the flag, else its environment variable, else the plugin's default.
    A bad value raises ``ConfigurationError`` naming the flag or the variable and what it expects."""
    return float(option_values(args, (TEARDOWN_RETRY,), environ)[TEARDOWN_RETRY])


def option_values(args: argparse.Namespace, names: Iterable[str], environ: Mapping[str, str]) -> dict[str, Any]:
    """Each named option's value as the plugin resolves it; ``ConfigurationError`` names a bad one."""
    from pytest_dumont.session.settings import OPTIONS_BY_NAME, option_value

    specs = [OPTIONS_BY_NAME[name] for name in names]
    return {spec.name: option_value(spec, getattr(args, spec.dest, None), None, environ)[0] for spec in specs}


def api_endpoint(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, Secret | None]:
    """The API URL and key (None when neither ``$VAST_API_KEY`` nor the key file gives one); ``ConfigurationError``
    for a bad URL or an unreadable key file."""
    from pytest_dumont.session.settings import read_api_key

    values = option_values(args, ("api-url", "api-key-file"), environ)
    return values["api-url"], read_api_key(values["api-key-file"], environ)


def ledger_path(given: str | None, environ: Mapping[str, str]) -> Path:
    """The ledger file: ``--ledger``, else ``$DUMONT_LEDGER``, else the state dir's, as a session finds it."""
    from pytest_dumont.safety.ledger_file import ledger_path as configured_ledger
    from pytest_dumont.session.settings import OPTIONS_BY_NAME, option_value

    return configured_ledger(option_value(OPTIONS_BY_NAME["ledger"], given, None, environ)[0])
