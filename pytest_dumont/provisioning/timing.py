"""Every SSH command a test runs, timed into its instance's record as a ``kind="command"`` phase.

The connection stays a real fabric ``Connection``: its class is swapped for a subclass that times ``run``, ``sudo``,
``put`` and ``get``, so ``isinstance`` checks and every attribute keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_dumont.provisioning.records import InstanceRecord, PhaseTiming
from pytest_dumont.secrets.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_dumont.clock import Clock

TIMED_METHODS = ("run", "sudo", "put", "get")
NAME_LIMIT = 60
_SUBCLASSES: dict[type[Any], type[Any]] = {}


def command_name(method: str, args: tuple[Any, ...]) -> str:
    """A short, secret-free name for one command: ``$ mkdir -p /workspace``, ``put model.bin``."""
    what = " ".join(str(a) for a in args[:2]) if method in ("put", "get") else str(args[0] if args else "")
    text = redact(" ".join(what.split()))
    text = text if len(text) <= NAME_LIMIT else text[: NAME_LIMIT - 1] + "…"
    return f"$ {text}" if method == "run" else f"{method} {text}"


def _timed(method: str) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        real = getattr(type(self).__mro__[1], method)
        record: InstanceRecord = self.__dict__["_dumont_record"]
        clock: Clock = self.__dict__["_dumont_clock"]
        started = clock.now()
        outcome = "failed"
        try:
            result = real(self, *args, **kwargs)
            failed = getattr(result, "failed", False)  # run(..., warn=True) returns a failed Result
            outcome = "failed" if failed is True else "passed"
            return result
        finally:
            name = command_name(method, args)
            record.phases.append(
                PhaseTiming(name, started, clock.now() - started, outcome, record.instance_id, kind="command")
            )

    call.__name__ = method
    return call


def _subclass(base: type[Any]) -> type[Any]:
    if base not in _SUBCLASSES:
        _SUBCLASSES[base] = type(f"Timed{base.__name__}", (base,), {m: _timed(m) for m in TIMED_METHODS})
    return _SUBCLASSES[base]


def time_commands(connection: Any, record: InstanceRecord, clock: Clock) -> Any:
    """Make ``connection`` record each command into ``record`` (idempotent); returns the same object."""
    base = type(connection)
    if base in _SUBCLASSES.values():
        return connection
    # DataProxy (invoke) turns unknown attribute sets into config keys: go around it.
    object.__setattr__(connection, "_dumont_record", record)
    object.__setattr__(connection, "_dumont_clock", clock)
    object.__setattr__(connection, "__class__", _subclass(base))
    return connection


FACT_COMMANDS = {
    "nvidia_smi": "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader",
    "disk": "df -h / | tail -n 1",
}


def gather_facts(connection: Any, record: InstanceRecord) -> None:
    """Read the GPU and disk lines once per instance, as a report shows them; a failure leaves them out."""
    if record.facts:
        return
    for key, command in FACT_COMMANDS.items():
        try:
            result = connection.run(command, hide=True, warn=True, timeout=30)
        except Exception as exc:  # facts are decoration: never fail a test for them
            record.facts[key] = f"unavailable ({type(exc).__name__})"
            continue
        record.facts[key] = result.stdout.strip() if result.ok else f"unavailable (exit {result.exited})"
