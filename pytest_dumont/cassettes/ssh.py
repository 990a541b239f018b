"""SSH transcripts: every ``run``/``sudo``/``put``/``get`` and byte stream of a test, recorded off the live
connection and replayed by a ``fabric.Connection`` subclass that answers from the transcript and never opens a socket.

A byte stream (``streams.open_stream``: a snapshot's tar) keeps its bytes only up to ``CONTENT_LIMIT``; a larger one
is written down as its size and sha256 and replays as that many zero bytes: the sizes and the order are checked on
replay, the content is not (it never left the instance).
"""

from __future__ import annotations

import base64
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
from pytest_dumont.cassettes.tape import PlayOnce
from pytest_dumont.clock import Clock
from pytest_dumont.secrets.scrub import Scrubber
from pytest_dumont.ssh.connect import SSHTarget, session_config
from pytest_dumont.ssh.streams import CHUNK, CommandStream, LiveStream

CONTENT_LIMIT = 1 << 20  # files fetched with get() are kept whole up to 1 MiB, so that replay can hand them back
METHODS = ("run", "sudo", "put", "get")  # and "stream": a command with byte streams (streams.open_stream)


@dataclass
class Transcript:
    """The SSH operations of one test (or of provisioning), in order; played back each once, in order."""

    path: Path
    operations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tape = PlayOnce(self.operations, lambda entry: f"{entry.get('op')} {_key(entry)}")

    def take(self, op: str, key: str, scrubber: Scrubber) -> dict[str, Any]:
        wanted = scrubber.text(key)
        entry = self._tape.take(lambda e: e.get("op") == op and _key(e) == wanted)
        if entry is None:
            raise CassetteError(
                f"SSH {op} {wanted!r} is not in cassette {self.path}; {self._tape.miss(f'{op} {wanted}')}. "
                "The test asks something the recording did not: record it again"
            )
        return entry


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
        methods = {m: _recorded(base, m) for m in METHODS}
        methods["dumont_open_stream"] = _recorded_stream
        _RECORDING[base] = type(f"Recording{base.__name__}", (base,), methods)
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
        marks: list[list[float]] = []
        if kwargs.get("out_stream") is not None:  # a reader that times lines (throughput): keep when each came
            kwargs["out_stream"] = _MarkedStream(kwargs["out_stream"], slot.clock, started, marks)
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
                _describe_transfer(entry, method, result, slot.scrubber)
            return result
        finally:
            if marks:
                entry["stdout_marks"] = marks
            entry["duration"] = round(slot.clock.now() - started, 6)
            slot.transcript.operations.append(entry)

    call.__name__ = method
    return call


class _MarkedStream(io.TextIOBase):
    """Passes a command's output on to the caller's ``out_stream``, noting when each piece came and how long it was."""

    def __init__(self, target: Any, clock: Clock, started: float, marks: list[list[float]]) -> None:
        self.target, self.clock, self.started, self.marks = target, clock, started, marks

    def write(self, text: str) -> int:
        self.marks.append([round(self.clock.now() - self.started, 6), len(text)])
        written: int = self.target.write(text)
        return written

    def flush(self) -> None:
        self.target.flush()


def _recorded_stream(self: Any, command: str) -> CommandStream:
    slot: TranscriptSlot = self.__dict__["_dumont_slot"]
    return RecordingStream(LiveStream(self, command), slot, slot.scrubber.text(command))


class RecordingStream:
    """A live byte stream that writes itself down (sizes, sha256, small contents, exit, stderr) when closed."""

    def __init__(self, live: LiveStream, slot: TranscriptSlot, command: str) -> None:
        self.live, self.slot = live, slot
        self.transcript = slot.transcript  # the test's that opened it, even if it is closed later
        self.entry: dict[str, Any] = {"op": "stream", "command": command}
        self.started = slot.clock.now()
        self.out, self.out_size, self.kept = hashlib.sha256(), 0, bytearray()
        self.into, self.in_size = hashlib.sha256(), 0
        self.seconds = 0.0
        self._closed = False

    def recv(self) -> bytes:
        data = self.live.recv()
        self.out.update(data)
        self.out_size += len(data)
        if self.out_size <= CONTENT_LIMIT:
            self.kept += data
        return data

    def send(self, data: bytes) -> bool:
        if not self.live.send(data):
            return False
        self.into.update(data)
        self.in_size += len(data)
        return True

    def finish(self) -> tuple[int, str]:
        status, stderr = self.live.finish()
        self.seconds = self.live.seconds
        self.entry.update(exited=status, stderr=self.slot.scrubber.text(stderr))
        return status, stderr

    def close(self) -> None:
        self.live.close()
        if self._closed:
            return
        self._closed = True
        entry = self.entry
        if "exited" not in entry:
            entry["error"] = "closed before the command finished"
        entry.update(out_size=self.out_size, out_sha256=self.out.hexdigest())
        if self.out_size <= CONTENT_LIMIT:
            entry["out_content"] = _kept(bytes(self.kept), self.slot.scrubber)
        entry.update(in_size=self.in_size, in_sha256=self.into.hexdigest())
        entry["duration"] = round(self.seconds or self.slot.clock.now() - self.started, 6)
        self.transcript.operations.append(entry)

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _argument(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if method in ("run", "sudo"):
        return str(args[0] if args else kwargs.get("command", ""))
    if method == "put":
        remote = args[1] if len(args) > 1 else kwargs.get("remote")
        return "" if remote is None else str(remote)
    return str(args[0] if args else kwargs.get("remote", ""))


def _describe_result(entry: dict[str, Any], result: Any, scrubber: Scrubber) -> None:
    entry.update(stdout=scrubber.text(result.stdout), stderr=scrubber.text(result.stderr), exited=result.exited)


def _describe_transfer(entry: dict[str, Any], method: str, result: Any, scrubber: Scrubber) -> None:
    data = _local_bytes(result.local)
    if data is not None:
        entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        if method == "get" and len(data) <= CONTENT_LIMIT:
            entry["content"] = _kept(data, scrubber)


def _kept(data: bytes, scrubber: Scrubber) -> str:
    """Bytes kept for replay, in base64, scrubbed as text is: base64 would hide a secret from every later scan.

    Latin-1 maps each byte to one character and back, so only a secret's own bytes change; the size and sha256
    written beside them are the original's.
    """
    return base64.b64encode(scrubber.text(data.decode("latin-1")).encode("latin-1", "replace")).decode("ascii")


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

    def _play(self, op: str, key: str, *, advance: bool = True) -> dict[str, Any]:
        slot = self._slot
        entry = slot.transcript.take(op, key, slot.scrubber)
        if advance:
            _advance(slot.clock, float(entry.get("duration", 0.0)))
        if "error" in entry:
            raise CassetteError(f"SSH {op} {key!r} failed when recorded ({entry['error']}); replaying that failure")
        return entry

    def run(self, command: str, **kwargs: Any) -> Result:
        return self._command("run", command, **kwargs)

    def sudo(self, command: str, **kwargs: Any) -> Result:
        return self._command("sudo", command, **kwargs)

    def _command(self, op: str, command: str, **kwargs: Any) -> Result:
        out_stream = kwargs.get("out_stream")
        entry = self._play(op, command, advance=out_stream is None)
        hide = _hidden(kwargs.get("hide", self.config.run.hide))
        if out_stream is not None:  # invoke writes to an explicit out_stream even when stdout is hidden
            hide = tuple(h for h in hide if h != "stdout")
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
        if out_stream is not None:
            self._stream_out(entry, out_stream)
        elif "stdout" not in hide and result.stdout:
            sys.stdout.write(result.stdout)
        if "stderr" not in hide and result.stderr:
            sys.stderr.write(result.stderr)
        if result.exited != 0 and not kwargs.get("warn", self.config.run.warn):
            raise UnexpectedExit(result)
        return result

    def _stream_out(self, entry: dict[str, Any], out_stream: Any) -> None:
        """Hand the output to ``out_stream`` piece by piece, the clock at each piece's recorded moment."""
        clock, text, elapsed = self._slot.clock, str(entry.get("stdout", "")), 0.0
        marks = entry.get("stdout_marks") or [[0.0, len(text)]]
        for at, length in marks:
            _advance(clock, float(at) - elapsed)
            elapsed = max(elapsed, float(at))
            piece, text = text[: int(length)], text[int(length) :]
            out_stream.write(piece)
        if text:
            out_stream.write(text)
        _advance(clock, float(entry.get("duration", 0.0)) - elapsed)

    def dumont_open_stream(self, command: str) -> CommandStream:
        """The recorded byte stream of ``command`` (``streams.open_stream`` asks for this)."""
        return ReplayStream(self._play("stream", command, advance=False), self._slot)

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


def _advance(clock: Clock, seconds: float) -> None:
    if hasattr(clock, "advance"):
        clock.advance(seconds)


class ReplayStream:
    """A recorded byte stream: the recorded stdout (or as many zero bytes, when it was too large to keep), stdin
    accepted up to the recorded size, then the recorded exit status and stderr; the clock moves by its duration.
    """

    def __init__(self, entry: dict[str, Any], slot: TranscriptSlot) -> None:
        self.entry, self.slot, self.path = entry, slot, slot.transcript.path
        self.content = base64.b64decode(entry["out_content"]) if "out_content" in entry else None
        # Kept bytes may be shorter than the original where a secret was scrubbed out of them.
        self.out_size = len(self.content) if self.content is not None else int(entry.get("out_size", 0))
        self.sent_limit = int(entry.get("in_size", 0))
        self.given = self.received = 0
        self.seconds = 0.0
        self._finished = False

    def recv(self) -> bytes:
        size = min(CHUNK, self.out_size - self.given)
        if size <= 0:
            return b""
        data = self.content[self.given : self.given + size] if self.content is not None else bytes(size)
        self.given += len(data)
        return data

    def send(self, data: bytes) -> bool:
        if self.received + len(data) > self.sent_limit:
            return False  # where the recorded command stopped reading
        self.received += len(data)
        return True

    def finish(self) -> tuple[int, str]:
        if self.received != self.sent_limit:
            raise CassetteError(
                f"stream {self.entry.get('command')!r} was sent {self.received} bytes on replay but "
                f"{self.sent_limit} when recorded in {self.path}: record the test again"
            )
        if not self._finished:
            self._finished = True
            self.seconds = float(self.entry.get("duration", 0.0))
            _advance(self.slot.clock, self.seconds)
        return int(self.entry.get("exited", 0)), str(self.entry.get("stderr", ""))

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
