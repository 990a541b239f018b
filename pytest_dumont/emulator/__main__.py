"""``python -m pytest_dumont.emulator``: serve the Vast.ai emulator until SIGINT or SIGTERM, then clean up."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from . import Emulator, MarketError
from .profiles import PROFILES


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0 picks a free one), got {text}")
    return value


def parser(prog: str = "python -m pytest_dumont.emulator") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Serve an emulated Vast.ai API (with a real SSH server per instance) on 127.0.0.1.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ap.add_argument("--port", type=_port, default=0, help="port to listen on (default: 0, a free port)")
    ap.add_argument("--api-key", help="the key clients must send (default: a random emu-... key, printed)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="fast", help="boot schedule (default: fast)")
    ap.add_argument("--time-factor", type=_positive, default=1.0, help="scale the profile's delays (default: 1)")
    ap.add_argument("--market", type=Path, help="JSON file of offers (default: the bundled market)")
    ap.add_argument("--rate-limit", type=_positive, help="requests per second per key and endpoint before 429")
    ap.add_argument("--no-ssh", action="store_true", help="no SSH servers: HTTP and state only")
    ap.add_argument("--workdir", type=Path, help="where instance sandboxes live (default: a temporary directory)")
    ap.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    return ap


def main(argv: Sequence[str] | None = None, prog: str = "python -m pytest_dumont.emulator") -> int:
    """Serve until SIGINT or SIGTERM; ``prog`` is the command its usage line names (``dumont emulator``)."""
    args = parser(prog).parse_args(argv)
    try:
        emulator = Emulator(
            api_key=args.api_key,
            profile=args.profile,
            time_factor=args.time_factor,
            market=args.market,
            rate_limit=args.rate_limit,
            host=args.host,
            port=args.port,
            ssh=not args.no_ssh,
            workdir=args.workdir,
        )
    except (MarketError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with emulator:
        emulator.set_log_requests(not args.quiet)
        print(f"pytest-dumont emulator listening on {emulator.url}", flush=True)
        print(f"API key: {emulator.api_key}", flush=True)  # a throwaway key, made for this run
        print(f"profile: {args.profile} x{args.time_factor:g}; controls under {emulator.url}/_emulator/", flush=True)
        print(
            f"try: VAST_URL={emulator.url} VAST_API_KEY={emulator.api_key} VASTAI_NO_UPDATE_CHECK=1 "
            "vastai search offers 'gpu_name=RTX_4090'",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        print("stopping: destroying instances", flush=True)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
