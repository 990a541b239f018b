"""SSH transcripts: every ``run``/``sudo``/``put``/``get`` of a test, recorded off the live connection and replayed
by a ``fabric.Connection`` subclass that answers from the transcript and never opens a socket.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fabric
from fabric.runners import Result
from fabric.transfer import Result as TransferResult
from invoke.exceptions import UnexpectedExit

from pytest_dumont.cassettes.format import CassetteError
from pytest_dumont.cassettes.scrub import Scrubber
from pytest_dumont.clock import Clock
from pytest_dumont.ssh import SSHTarget, session_config

CONTENT_LIMIT = 1 << 20  # files fetched with get() are kept whole up to 1 MiB, so that replay can hand them back
METHODS = ("run", "sudo", "put", "get")


@dataclass
class Transcript:
    """The SSH operations of one test (or of provisioning), in order; played back each once, in order."""

    path: Path
    operations: list[dict[str, Any]] = field(default_factory=list)
    played: set[int] = field(default_factory=set)

    def take(self, op: str, key: str, scrubber: Scrubber) -> dict[str, Any]:
        wanted = scrubber.text(key)
        for index, entry in enumerate(self.operations):
            if index not in self.played and entry.get("op") == op and _key(entry) == wanted:
                self.played.add(index)
                return entry
        recorded = [f"{e.get('op')} {_key(e)}" for e in self.operations]
        nearest = difflib.get_close_matches(f"{op} {wanted}", recorded, n=1, cutoff=0.0)
        hint = f"nearest recorded: {nearest[0]!r}" if nearest else "the transcript is empty"
        already = " (recorded, but every recorded answer was already played)" if f"{op} {wanted}" in recorded else ""
        raise CassetteError(
            f"SSH {op} {wanted!r} is not in cassette {self.path}{already}; {hint}. "
            "The test asks something the recording did not: record it again"
        )


def _key(entry: dict[str, Any]) -> str:
    return str(entry.get("command", entry.get("remote", "")))


@dataclass
class TranscriptSlot:
    """Which transcript the shared connection writes to or reads from now: the running test's, else provisioning's."""

    clock: Clock
    scrubber: Scrubber
    default: Transcript
    current: Transcript | None = None

    @property
    def transcript(self) -> Transcript:
        return self.current if self.current is not None else self.default


# --- recording: the live connection's class is swapped for a subclass that writes each operation down -----------


_RECORDING: dict[type[Any], type[Any]] = {}


def record_into(connection: Any, slot: TranscriptSlot) -> Any:
    """Make the live ``connection`` write every operation into ``slot`` (it stays a fabric ``Connection``)."""
    base = type(connection)
    if base not in _RECORDING:
        _RECORDING[base] = type(f"Recording{base.__name__}", (base,), {m: _recorded(base, m) for m in METHODS})
    object.__setattr__(connection, "_dumont_slot", slot)
    object.__setattr__(connection, "__class__", _RECORDING[base])
    return connection


def _recorded(base: type[Any], method: str) -> Any:
    real = getattr(base, method)

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        slot: TranscriptSlot = self.__dict__["_dumont_slot"]
        started = slot.clock.now()
        key = "command" if method in ("run", "sudo") else "remote"
        entry: dict[str, Any] = {"op": method, key: slot.scrubber.text(_argument(method, args, kwargs))}
        try:
            result = real(self, *args, **kwargs)
        except UnexpectedExit as exc:
            _describe_result(entry, exc.result, slot.scrubber)
            raise
        except Exception as exc:
            entry["error"] = slot.scrubber.text(f"{type(exc).__name__}: {exc}")[:500]
            raise
        else:
            if method in ("run", "sudo"):
                _describe_result(entry, result, slot.scrubber)
            else:
                _describe_transfer(entry, method, result, args, kwargs)
            return result
        finally:
            entry["duration"] = round(slot.clock.now() - started, 6)
            slot.transcript.operations.append(entry)

    call.__name__ = method
    return call


def _argument(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if method in ("run", "sudo"):
        return str(args[0] if args else kwargs.get("command", ""))
    if method == "put":
        remote = args[1] if len(args) > 1 else kwargs.get("remote")
        return "" if remote is None else str(remote)
    return str(args[0] if args else kwargs.get("remote", ""))


def _describe_result(entry: dict[str, Any], result: Any, scrubber: Scrubber) -> None:
    entry.update(stdout=scrubber.text(result.stdout), stderr=scrubber.text(result.stderr), exited=result.exited)


def _describe_transfer(
    entry: dict[str, Any], method: str, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    data = _local_bytes(result.local)
    if data is not None:
        entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        if method == "get" and len(data) <= CONTENT_LIMIT:
            entry["content"] = base64.b64encode(data).decode("ascii")


def _local_bytes(local: Any) -> bytes | None:
    if isinstance(local, (str, os.PathLike)):
        try:
            return Path(local).read_bytes()
        except OSError:
            return None
    if isinstance(local, io.BytesIO):
        return local.getvalue()
    return None


# --- replay ------------------------------------------------------------------------------------------------------


def _hidden(hide: Any) -> tuple[str, ...]:
    if hide in (True, "both"):
        return ("stdout", "stderr")
    if hide in ("out", "stdout"):
        return ("stdout",)
    if hide in ("err", "stderr"):
        return ("stderr",)
    return ()


class ReplayConnection(fabric.Connection):  # type: ignore[misc]  # fabric is untyped
    """A fabric ``Connection`` that answers every operation from the transcript and advances the virtual clock."""

    def __init__(self, target: SSHTarget, slot: TranscriptSlot) -> None:
        super().__init__(target.host, user=target.user, port=target.port, config=session_config())
        object.__setattr__(self, "_dumont_slot", slot)

    @property
    def _slot(self) -> TranscriptSlot:
        slot: TranscriptSlot = self.__dict__["_dumont_slot"]
        return slot

    @property
    def is_connected(self) -> bool:
        return True

    def open(self) -> None:
        """Nothing to open: replay never touches the network."""

    def close(self) -> None:
        """Nothing to close."""

    def _play(self, op: str, key: str) -> dict[str, Any]:
        slot = self._slot
        entry = slot.transcript.take(op, key, slot.scrubber)
        if hasattr(slot.clock, "advance"):
            slot.clock.advance(float(entry.get("duration", 0.0)))
        if "error" in entry:
            raise CassetteError(f"SSH {op} {key!r} failed when recorded ({entry['error']}); replaying that failure")
        return entry

    def run(self, command: str, **kwargs: Any) -> Result:
        return self._command("run", command, **kwargs)

    def sudo(self, command: str, **kwargs: Any) -> Result:
        return self._command("sudo", command, **kwargs)

    def _command(self, op: str, command: str, **kwargs: Any) -> Result:
        entry = self._play(op, command)
        hide = _hidden(kwargs.get("hide", self.config.run.hide))
        result = Result(
            connection=self,
            stdout=entry.get("stdout", ""),
            stderr=entry.get("stderr", ""),
            exited=int(entry.get("exited", 0)),
            command=command,
            encoding="utf-8",
            hide=hide,
            pty=bool(kwargs.get("pty", False)),
        )
        if "stdout" not in hide and result.stdout:
            sys.stdout.write(result.stdout)
        if "stderr" not in hide and result.stderr:
            sys.stderr.write(result.stderr)
        if result.exited != 0 and not kwargs.get("warn", self.config.run.warn):
            raise UnexpectedExit(result)
        return result

    def put(self, local: Any, remote: str | None = None, preserve_mode: bool = True) -> TransferResult:
        key = "" if remote is None else str(remote)
        entry = self._play("put", key)
        data = _local_bytes(local)
        if data is not None and entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CassetteError(
                f"put {local!r} -> {key!r}: the local file differs from the one recorded in "
                f"{self._slot.transcript.path} (sha256 {entry['sha256'][:12]}..., {entry.get('size')} bytes): "
                "record the test again"
            )
        return TransferResult(connection=self, orig_remote=remote, remote=key, orig_local=local, local=local)

    def get(self, remote: str, local: Any = None, preserve_mode: bool = True) -> TransferResult:
        entry = self._play("get", str(remote))
        if "content" not in entry:
            raise CassetteError(
                f"get {remote!r}: {self._slot.transcript.path} holds only its size and sha256 (files over "
                f"{CONTENT_LIMIT} bytes are not kept), so replay cannot hand it back: run this test live"
            )
        data = base64.b64decode(entry["content"])
        target: Any = local
        if local is None or (
            isinstance(local, (str, os.PathLike)) and (str(local).endswith("/") or Path(local).is_dir())
        ):
            target = str(Path(local or ".") / Path(str(remote)).name)
        if isinstance(target, (str, os.PathLike)):
            Path(target).write_bytes(data)
        else:
            target.write(data)
        return TransferResult(connection=self, orig_remote=remote, remote=remote, orig_local=local, local=target)
