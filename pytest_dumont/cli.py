"""The ``dumont`` command: one entry point whose subcommands live in ``pytest_dumont/commands/``.

Each subcommand module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; adding one
is a module and a line in ``SUBCOMMANDS``. Subcommands import what they need inside ``run`` so that ``dumont --help``
stays fast.

Exit codes: 0 success, 1 the command ran and found a problem (a leak, a failed check), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from pytest_dumont import __version__

# module names under pytest_dumont.commands, in the order --help lists them
SUBCOMMANDS: tuple[str, ...] = ("emulator", "offers", "report", "reap", "parked", "release", "check_secrets", "test")


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"pytest_dumont.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dumont", description="pytest-dumont: GPU integration tests on Vast.ai.")
    parser.add_argument("--version", action="version", version=f"pytest-dumont {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = _load(name)
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP, add_help=getattr(module, "ADD_HELP", True)
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run, passthrough=getattr(module, "PASSTHROUGH", False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
