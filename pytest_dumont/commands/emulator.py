"""``dumont emulator``: serve the bundled Vast.ai emulator (the same as ``python -m pytest_dumont.emulator``)."""

from __future__ import annotations

import argparse

NAME = "emulator"
ADD_HELP = False  # --help goes through to the emulator's own parser, which knows its options
PASSTHROUGH = True  # every option is the emulator's
HELP = "serve the bundled Vast.ai emulator (real HTTP, a real SSH server per instance) until Ctrl-C"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's own parser reads the options (``dumont emulator --help`` lists them)."""


def run(args: argparse.Namespace) -> int:
    try:
        from pytest_dumont.emulator.__main__ import main
    except ImportError as exc:
        print(f"dumont emulator needs the emulator extra: pip install 'pytest-dumont[emulator]' ({exc})")
        return 2
    return main(args.extra, prog="dumont emulator")
