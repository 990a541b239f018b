"""A watchdog process that destroys the session's instances when pytest dies without tearing down (kill -9, OOM).

Like testcontainers' Ryuk, cleanup hangs on the liveness of a connection, not on code running in the dying process.
pytest starts ``python -m pytest_dumont.safety.watchdog`` when a session's pool opens, and waits for its READY before
the first create; the child forks once more (so that it is no longer pytest's child, nor in its process group or
session) and talks over the two pipes it inherited:

    pytest -> watchdog: {"op": "hello", "api_url", "api_key", "label_prefix", "ledger", "log", "retry_s",
                         "teardown_retry_s", "key_dir"}
    watchdog -> pytest: READY <pid>                                              (the handshake, awaited)
    pytest -> watchdog: {"op": "register"|"gone"|"keep", "id": N, "label": ...}  -> ACK <op> <id>
    pytest -> watchdog: {"op": "bye"}                                            -> ACK bye

The key travels in the hello, never in argv or the environment. ``log`` is the path of the file the watchdog's stderr
goes to (or null), so that it can remove it.

When its stdin ends, the watchdog destroys every instance still registered and not kept; when it ends without a
``bye`` (pytest died) it also sweeps every instance whose label starts with the session's prefix (a create whose
answer never arrived), and removes ``key_dir``, the directory of the session's private SSH key, which pytest would
have removed at its end. Each destroy is confirmed (the API no longer lists the instance) and written to the ledger
file and to the watchdog's log. An uneventful session (a ``bye`` with nothing registered and nothing kept) leaves
nothing worth reading: its log is removed last thing; every other log stays for a person to read.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_dumont.errors import WatchdogError
from pytest_dumont.secrets.redact import redact, register_secret

if TYPE_CHECKING:
    from pytest_dumont.provisioning.records import InstanceRecord
    from pytest_dumont.vast.models import Offer

READY_TIMEOUT_S = 20.0
ACK_TIMEOUT_S = 10.0


class WatchdogLink:
    """pytest's end of the pipe to its watchdog: every message waits for the watchdog's acknowledgement.

    Thread-safe: instances rented at once (``--dumont-remote-instances``) register from their own threads, and each
    message and its answer are one exchange.
    """

    def __init__(self, proc: subprocess.Popen[bytes], pid: int, log_path: Path | None) -> None:
        self._proc = proc
        self.pid = pid
        self.log_path = log_path
        self._buffer = b""
        self._closed = False
        self._ready = False  # READY received (``confirm``)
        self._spawn_error: OSError | None = None
        # One message and its acknowledgement at a time: prewarming's thread and the main thread both create.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"WatchdogLink(pid={self.pid})"

    @classmethod
    def spawn(
        cls,
        *,
        api_url: str,
        api_key: str | None,
        label_prefix: str,
        ledger_path: Path | None,
        log_path: Path | None,
        retry_s: float | None = None,
        teardown_retry_s: float | None = None,
        key_dir: Path | None = None,
    ) -> WatchdogLink:
        """Start the watchdog process and send its hello without waiting; ``confirm`` waits for its READY.

        Its interpreter starts (about 0.1 s) while the session goes on, e.g. searching offers; nothing may be created
        before ``confirm`` has returned.
        """
        register_secret(api_key)
        log: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed here right after
            log_path.chmod(0o600)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pytest_dumont.safety.watchdog"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # Ctrl-C and a terminal hang-up reach pytest's group, not the watchdog
            )
        finally:
            if not isinstance(log, int):
                log.close()
        link = cls(proc, pid=proc.pid, log_path=log_path)
        hello = {
            "op": "hello",
            "api_url": api_url,
            "api_key": api_key,
            "label_prefix": label_prefix,
            "ledger": str(ledger_path) if ledger_path else None,
            "log": str(log_path) if log_path else None,
            "retry_s": retry_s,
            "teardown_retry_s": teardown_retry_s,
            "key_dir": str(key_dir) if key_dir else None,
        }
        try:
            link._write(hello)
        except OSError as exc:  # it died at once: confirm reports it
            link._spawn_error = exc
        return link

    def confirm(self, ready_timeout: float | None = None) -> WatchdogLink:
        """Wait for the READY of a spawned watchdog (at once if it came already); raises ``WatchdogError``."""
        with self._lock:
            return self._confirm_locked(ready_timeout)

    def _confirm_locked(self, ready_timeout: float | None) -> WatchdogLink:
        if self._ready:
            return self
        ready_timeout = READY_TIMEOUT_S if ready_timeout is None else ready_timeout
        try:
            if self._spawn_error is not None:
                raise self._spawn_error
            line = self._read_line(time.monotonic() + ready_timeout)
            if not line.startswith("READY "):
                raise WatchdogError(f"the watchdog answered {line!r} instead of READY")
            self.pid = int(line.split()[1])
            self._proc.wait(ready_timeout)  # the first child exits once it has forked the watchdog proper
        except (WatchdogError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            self._proc.kill()
            self._abandon()
            where = f"; see {self.log_path}" if self.log_path else ""
            raise WatchdogError(
                f"the watchdog process did not confirm its start within {ready_timeout:g} s ({exc}){where}. "
                "Nothing was rented: without it a killed pytest could leave instances billing"
            ) from None
        self._ready = True
        return self

    def register(self, instance_id: int, label: str) -> None:
        """Tell the watchdog about a new instance; returns once it has acknowledged it."""
        self._send({"op": "register", "id": instance_id, "label": label})

    def gone(self, instance_id: int) -> None:
        """The instance was destroyed (confirmed): the watchdog forgets it."""
        self._send({"op": "gone", "id": instance_id})

    def keep(self, instance_id: int) -> None:
        """The instance is kept on purpose (``--dumont-keep-on-failure``): the watchdog must not destroy it."""
        self._send({"op": "keep", "id": instance_id})

    def close(self) -> None:
        """Say goodbye: the watchdog destroys whatever is still registered, then exits."""
        with self._lock:
            if self._closed:
                return
            try:
                self._send({"op": "bye"})
            finally:
                self._abandon()

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                raise WatchdogError("the watchdog link is closed")
            self.confirm()
            try:
                self._write(message)
                line = self._read_line(time.monotonic() + ACK_TIMEOUT_S)
            except OSError as exc:
                raise WatchdogError(f"the watchdog (pid {self.pid}) is gone: {exc}") from None
        expected = f"ACK {message['op']}" + (f" {message['id']}" if "id" in message else "")
        if line != expected:
            raise WatchdogError(f"the watchdog (pid {self.pid}) answered {line!r} instead of {expected!r}")

    def _write(self, message: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        self._proc.stdin.flush()

    def _read_line(self, deadline: float) -> str:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WatchdogError("no answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise WatchdogError("it closed its end of the pipe")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def _abandon(self) -> None:
        self._closed = True
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1)


class WatchdogWatcher:
    """Has the watchdog confirmed before the first create and keeps it told (a ``lifecycle.InstanceWatcher``).

    ``spawn`` starts the process without waiting (``WatchdogLink.spawn``). ``launch`` calls it early, when the pool
    opens, so that the process starts while the offers are searched; the first ``expecting`` then waits for its
    READY (spawning it there if it was not launched, or its launch failed) and raises if it does not come.
    """

    def __init__(self, spawn: Callable[[], WatchdogLink]) -> None:
        self._spawn = spawn
        self._launched: WatchdogLink | None = None
        self.link: WatchdogLink | None = None
        # Prewarming's thread and a test's factory may create at the same moment. Without this, each would start a
        # watchdog and one link would be dropped: its pipe closes, and that watchdog, taking pytest for dead, destroys
        # the session's instances and removes its key mid-run.
        self._lock = threading.Lock()

    def launch(self) -> None:
        """Start the process now, without waiting for it; a failure here is retried, and raised, at ``expecting``."""
        with self._lock:
            if self.link is None and self._launched is None:
                with contextlib.suppress(Exception):
                    self._launched = self._spawn()

    def expecting(self, label: str, offer: Offer) -> None:
        with self._lock:
            if self.link is None:
                launched, self._launched = self._launched, None
                self.link = (launched or self._spawn()).confirm()  # raises WatchdogError: then nothing is created

    def created(self, record: InstanceRecord) -> None:
        assert self.link is not None
        self.link.register(record.instance_id, record.label)

    def ended(self, label: str, instance_id: int | None, outcome: str, note: str = "") -> None:
        if self.link is None or instance_id is None:
            return
        # A failed teardown stays registered: the watchdog tries again when the session ends.
        if outcome == "destroyed":
            self.link.gone(instance_id)
        elif outcome in ("kept", "parked"):  # parked (--dumont-reuse): left for the next session, like kept
            self.link.keep(instance_id)

    def close(self) -> None:
        with self._lock:
            launched, self._launched = self._launched, None
        if launched is not None:  # launched but never needed: nothing was registered with it
            with contextlib.suppress(WatchdogError):
                launched.close()
        if self.link is not None:
            self.link.close()


# --- the watchdog process -----------------------------------------------------------------------------------------


def _log(text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    try:
        sys.stderr.write(f"{stamp} watchdog[{os.getpid()}] {redact(text)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _answer(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # pytest is gone: nobody is listening, the work goes on


def main() -> int:
    """Serve one session: acknowledge registrations, and destroy what is left when the pipe ends."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the session's Ctrl-C or hang-up must not kill its guardian
    if os.fork() > 0:
        os._exit(0)  # the first child exits: the watchdog is reparented, outside pytest's process tree
    line = sys.stdin.buffer.readline()
    try:
        hello = json.loads(line)
        if hello.get("op") != "hello":
            raise ValueError("the first message must be hello")
    except ValueError as exc:
        _answer(f"ERROR {exc}")
        return 2
    from pytest_dumont.safety.ledger_file import LedgerFile
    from pytest_dumont.vast.client import VastClient

    register_secret(hello.get("api_key"))
    from pytest_dumont.vast.retry import RetryPolicy

    policy = RetryPolicy()
    if hello.get("retry_s"):
        policy = replace(policy, total_seconds=float(hello["retry_s"]))
    if hello.get("teardown_retry_s"):
        policy = replace(policy, teardown_seconds=float(hello["teardown_retry_s"]))
    client = VastClient(hello["api_url"], hello.get("api_key"), policy=policy)
    ledger = LedgerFile(Path(hello["ledger"])) if hello.get("ledger") else None
    prefix = str(hello["label_prefix"])
    _answer(f"READY {os.getpid()}")
    _log(f"watching session {prefix} at {client.base_url}")
    registered, kept, clean = _serve(sys.stdin.buffer)
    uneventful = clean and not registered and not kept  # then the teardown has nothing to destroy, sweep or record
    code = _teardown(client, ledger, prefix, registered, kept, clean)
    if not clean and hello.get("key_dir"):
        _remove_key_dir(Path(hello["key_dir"]))
    if uneventful and code == 0 and hello.get("log"):
        _remove_uneventful_log(Path(hello["log"]))
    return code


def _remove_uneventful_log(log_path: Path) -> None:
    """Remove the log of a session that needed nothing: one per session would pile up in the state dir.

    Called after the last line is logged. Best effort: a log that cannot be removed is pruned after a week.
    """
    with contextlib.suppress(OSError):
        log_path.unlink()


def _remove_key_dir(key_dir: Path) -> None:
    """Remove the session's private SSH key: pytest died before its own teardown could (kill -9, OOM)."""
    import shutil

    if key_dir.is_dir():
        shutil.rmtree(key_dir, ignore_errors=True)
        _log("removed the session's SSH key" if not key_dir.exists() else f"could not remove {key_dir}")


def _serve(stream: IO[bytes]) -> tuple[dict[int, str], set[int], bool]:
    registered: dict[int, str] = {}
    kept: set[int] = set()
    for raw in stream:
        try:
            message = json.loads(raw)
            op = message["op"]
            instance_id = int(message["id"]) if "id" in message else None
        except (ValueError, KeyError, TypeError):
            _answer("ERROR bad message")
            continue
        if op == "bye":
            _log(f"the session said goodbye; {len(registered)} instance(s) still registered")
            _answer("ACK bye")
            return registered, kept, True
        if instance_id is None or op not in ("register", "gone", "keep"):
            _answer(f"ERROR unknown {op!r}")
            continue
        if op == "register":
            registered[instance_id] = str(message.get("label", ""))
            _log(f"registered instance {instance_id} ({registered[instance_id]})")
        else:
            registered.pop(instance_id, None)
            if op == "keep":
                kept.add(instance_id)
                _log(f"instance {instance_id} is kept on purpose: not destroying it")
        _answer(f"ACK {op} {instance_id}")
    return registered, kept, False


def _teardown(client: Any, ledger: Any, prefix: str, registered: dict[int, str], kept: set[int], clean: bool) -> int:
    from pytest_dumont.errors import DumontError
    from pytest_dumont.safety.reap import destroy_confirmed

    started = time.monotonic()
    targets = dict(registered)
    if not clean:
        _log(f"pytest went away without saying goodbye: destroying {len(targets)} registered instance(s) first")
    for instance_id, label in targets.items():
        _destroy(client, ledger, instance_id, label, started, destroy_confirmed)
    if not clean:
        try:
            leftovers = [
                i for i in client.list_instances() if (i.label or "").startswith(prefix + "-") and i.id not in kept
            ]
        except DumontError as exc:
            _log(f"could not list instances to sweep by label {prefix}-*: {exc.message}")
            return 1
        for instance in leftovers:
            if instance.id not in targets:
                _destroy(client, ledger, instance.id, instance.label or "", started, destroy_confirmed)
    _log(f"done in {time.monotonic() - started:.3f} s")
    return 0


def _destroy(client: Any, ledger: Any, instance_id: int, label: str, started: float, destroy: Any) -> None:
    reason = destroy(client, instance_id)
    took = time.monotonic() - started
    if reason is None:
        _log(f"destroyed instance {instance_id} ({label}), confirmed after {took:.3f} s")
    else:
        _log(f"COULD NOT DESTROY instance {instance_id} ({label}): {reason}; run `dumont reap`")
    if ledger is not None:
        try:
            ledger.settle(
                label, instance_id, "destroyed" if reason is None else "teardown_failed", reason or "watchdog"
            )
        except Exception as exc:
            _log(f"could not update the ledger file: {exc}")


if __name__ == "__main__":
    sys.exit(main())
