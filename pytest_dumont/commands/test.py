"""``dumont test NAME``: run one scenario of ``pytest_dumont.scenarios`` by name.

Against the bundled emulator by default (no key, no money: it runs anywhere); ``--real`` runs it live on Vast.ai
(``-m real_gpu``, needs ``VAST_API_KEY``); ``--replay`` replays the recordings shipped in the package. Any
further argument goes to pytest. The exit code is pytest's; an unknown scenario is a usage error (2) that lists them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import resources

NAME = "test"
HELP = "run a ready-made scenario (lifecycle, failover, large_artifact, hibernation, inference) by name"
PASSTHROUGH = True  # unknown arguments are pytest's


def scenarios() -> list[str]:
    """Scenario names: the ``test_*.py`` modules of ``pytest_dumont.scenarios``, without the prefix."""
    package = resources.files("pytest_dumont.scenarios")
    return sorted(
        entry.name.removeprefix("test_").removesuffix(".py")
        for entry in package.iterdir()
        if entry.name.startswith("test_") and entry.name.endswith(".py")
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the scenario: " + ", ".join(scenarios()) + ", or all")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--real", action="store_true", help="live on Vast.ai (-m real_gpu; needs VAST_API_KEY)")
    where.add_argument("--replay", action="store_true", help="replay from cassettes instead of the emulator")


def pytest_argv(args: argparse.Namespace) -> list[str]:
    """The pytest command line for ``args`` (``args.name`` known to be a scenario or ``all``)."""
    target = "pytest_dumont.scenarios" + ("" if args.name == "all" else f".test_{args.name}")
    mode = ["-m", "real_gpu"] if args.real else ["--dumont-mode=replay"] if args.replay else ["--dumont-mode=emulator"]
    # Scenarios rent their own instances (dumont_instance_factory): a prewarmed shared one would only cost.
    return [sys.executable, "-m", "pytest", "--pyargs", target, *mode, "--dumont-prewarm=off", *args.extra]


def run(args: argparse.Namespace) -> int:
    known = scenarios()
    if args.name not in (*known, "all"):
        print(f"dumont test: no scenario named {args.name!r}; the scenarios are: {', '.join(known)}", file=sys.stderr)
        return 2
    return subprocess.call(pytest_argv(args))
