"""Every SSH command a test runs, timed into its instance's record as a ``kind="command"`` phase, and the phases a
test names itself (``dumont_phase``, ``factory.phase``) as ``kind="user"``.

The connection stays a real fabric ``Connection``: its class is swapped for a subclass that times ``run``, ``sudo``,
``put`` and ``get``, so ``isinstance`` checks and every attribute keep working. Each phase carries the test that ran
it (the record's open hold) and its depth (how many of the test's own phases were open around it), so the report can
nest a command under its phase and count its seconds once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pytest_dumont.provisioning.records import InstanceRecord, TimedPhase
from pytest_dumont.secrets.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_dumont.clock import Clock

TIMED_METHODS = ("run", "sudo", "put", "get")
NAME_LIMIT = 60
_SUBCLASSES: dict[type[Any], type[Any]] = {}
_DEPTH: ContextVar[int] = ContextVar("dumont_phase_depth", default=0)  # the test's own phases open here


def holder(record: InstanceRecord) -> str | None:
    """The test holding ``record`` in this process now (its open hold), or None."""
    for hold in reversed(record.holds):
        if hold.ended is None:
            return hold.nodeid
    return None


@contextmanager
def user_phase(record: InstanceRecord | None, name: str, clock: Clock) -> Iterator[None]:
    """Time a step a test names into ``record`` (``kind="user"``); what runs inside it is nested one level deeper."""
    depth = _DEPTH.get()
    token = _DEPTH.set(depth + 1)
    try:
        if record is None:
            yield
            return
        with TimedPhase(record.phases, name, clock, record.instance_id, kind="user", test=holder(record), depth=depth):
            yield
    finally:
        _DEPTH.reset(token)


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
        name = command_name(method, args)
        with TimedPhase(
            record.phases, name, clock, record.instance_id, kind="command", test=holder(record), depth=_DEPTH.get()
        ) as phase:
            result = real(self, *args, **kwargs)
            if getattr(result, "failed", False) is True:  # run(..., warn=True) returns a failed Result
                phase.outcome = "failed"
            return result

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
