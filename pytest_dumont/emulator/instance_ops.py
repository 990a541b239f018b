"""What Vast does inside an instance on the API's behalf: read its logs, run a constrained command.

Both need the instance's sandbox (``ssh=True``). Container logs are what the container printed: the ``onstart``
output, as Vast's are the entrypoint's and onstart's. Daemon logs are the emulator's own record of the instance's
transitions.
"""

from __future__ import annotations

import datetime
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ApiError, invalid_args
from .hosts import InstanceHost
from .sandbox import Sandbox

DEFAULT_TAIL = 1000
ALLOWED_COMMANDS = frozenset({"ls", "rm", "du"})  # `vastai execute` documents these three
_SHELL_SYNTAX = re.compile(r"[;&|`$<>(){}\\\n]")
COMMAND_TIMEOUT_S = 60.0


def sandbox_of(host: InstanceHost) -> Sandbox | None:
    """The instance's sandbox, or None without one (``ssh=False``)."""
    sandbox = getattr(host, "sandbox", None)
    return sandbox if isinstance(sandbox, Sandbox) else None


def container_log(host: InstanceHost) -> str:
    sandbox = sandbox_of(host)
    if sandbox is None:
        return ""
    path = sandbox.root / "onstart.log"
    return path.read_text(errors="replace") if path.exists() else ""


def daemon_log(transitions: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for t in transitions:
        when = datetime.datetime.fromtimestamp(float(t["at"]), tz=datetime.timezone.utc).isoformat(timespec="seconds")
        msg = f": {t['status_msg']}" if t.get("status_msg") else ""
        lines.append(f"{when} {t.get('event') or 'update'} actual_status={t['actual_status']}{msg}")
    return "\n".join(lines) + ("\n" if lines else "")


def select_lines(text: str, body: Mapping[str, Any]) -> str:
    """Apply ``filter`` (a grep pattern; plain text when it is no valid regex) and then ``tail`` (default 1000)."""
    lines = text.splitlines()
    pattern = body.get("filter")
    if pattern:
        try:
            regex = re.compile(str(pattern))
            lines = [line for line in lines if regex.search(line)]
        except re.error:
            lines = [line for line in lines if str(pattern) in line]
    tail = body.get("tail")
    try:
        count = DEFAULT_TAIL if tail in (None, "") else int(tail)
    except (TypeError, ValueError):
        raise invalid_args(f"tail must be a number of lines, got {tail!r}") from None
    kept = lines[-count:] if count > 0 else []
    return "\n".join(kept) + ("\n" if kept else "")


def check_command(command: Any) -> list[str]:
    """The constrained command as argv: ``ls``, ``rm`` or ``du`` with plain arguments, no shell syntax."""
    if not isinstance(command, str) or not command.strip():
        raise invalid_args("command is required, e.g. 'ls -l'")
    if _SHELL_SYNTAX.search(command):
        raise invalid_args("command must be a single ls, rm or du invocation without shell syntax")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise invalid_args(f"command does not parse: {exc}") from None
    if argv[0] not in ALLOWED_COMMANDS:
        raise invalid_args(f"command {argv[0]!r} is not allowed: only ls, rm and du")
    if any(".." in arg.split("/") for arg in argv[1:]):
        raise invalid_args("paths must stay inside the instance (no '..')")
    return argv


def run_command(host: InstanceHost, command: Any) -> tuple[str, str]:
    """Run it in the instance's sandbox, from ``/workspace``; returns (output, ``writeable_path``).

    ``writeable_path`` is the sandbox's directory on this machine: the prefix the CLI strips from the output, as it
    strips the container's directory on a Vast host.
    """
    argv = check_command(command)
    sandbox = sandbox_of(host)
    if sandbox is None:
        raise ApiError(400, "not_supported", "execute needs the emulator's instance sandboxes (ssh=True)")
    try:
        done = subprocess.run(
            sandbox.command_argv(shlex.join(argv)),
            env=sandbox.environment(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ApiError(504, "timeout", f"command did not finish within {COMMAND_TIMEOUT_S:g} s") from None
    return done.stdout + done.stderr, str(sandbox.root)
