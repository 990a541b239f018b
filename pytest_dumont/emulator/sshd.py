"""One emulated instance's SSH server (asyncssh): key-only root login, exec and shell inside its sandbox, and SFTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

from pytest_dumont.emulator.loop import LoopThread
from pytest_dumont.emulator.quiet_asyncssh import asyncssh
from pytest_dumont.emulator.sandbox import Sandbox

_CHUNK = 65536
_CLOSE_TIMEOUT_S = 5.0
# The account Vast's copy to and from a local path logs in as, to run rsync in daemon mode over SSH: ``vastai copy``
# runs ``rsync ... vastai_kaalia@<addr>::C.<id>/<path>`` (vastai 1.9.1, cli/commands/storage.py).
RSYNC_USER = "vastai_kaalia"


def rsyncd_conf(root: Path, modules: tuple[str, ...]) -> str:
    """An rsync daemon configuration serving ``root`` read-write under each of ``modules``, as this process's user."""
    lines = ["use chroot = no", "numeric ids = yes", f"uid = {os.getuid()}", f"gid = {os.getgid()}"]
    for module in modules:
        lines += [f"[{module}]", f"    path = {root}", "    read only = no", "    list = no"]
    return "\n".join(lines) + "\n"


def _is_accepted_env(name: str) -> bool:
    """What a stock sshd lets a client set (``AcceptEnv LANG LC_*``); the rest of the environment is the instance's."""
    return name == "LANG" or name.startswith("LC_")


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and not listening, so that connects to it are refused."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets the listener share the port with this reservation and re-bind over TIME_WAIT leftovers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def listed_in_authorized_keys(path: Path, key: asyncssh.SSHKey, client_addr: str = "127.0.0.1") -> bool:
    """Whether an OpenSSH ``authorized_keys`` file lets ``key`` in (its ``from=`` options checked, as sshd would).

    An unreadable file lets nobody in; a line that does not parse is skipped, as sshd skips it.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = asyncssh.import_authorized_keys(line)
        except (asyncssh.KeyImportError, ValueError):
            continue
        if entry.validate(key, "localhost", client_addr) is not None:
            return True
    return False


class _InstanceSFTP(asyncssh.SFTPServer):
    """SFTP on the paths the instance's commands see: chroot at the sandbox root, relative paths from /root."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], root: Path) -> None:
        super().__init__(chan, chroot=os.fsencode(root))

    def map_path(self, path: bytes) -> bytes:
        """Resolve a client path inside the sandbox, relative ones from /root as sshd's home directory would."""
        if not path.startswith(b"/"):
            path = b"/root/" + path
        return super().map_path(path)


class _Gatekeeper(asyncssh.SSHServer):
    """Per-connection policy: public keys only, user root only, and bookkeeping of live connections."""

    def __init__(self, owner: InstanceSSH) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        """Track the connection (close() drops it) and turn Nagle off so that small replies are not held back."""
        self._conn = conn
        self._owner._connections.add(conn)
        sock = conn.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        """Always require authentication."""
        return True

    def password_auth_supported(self) -> bool:
        """Passwords are never accepted, as on a Vast.ai instance."""
        return False

    def kbdint_auth_supported(self) -> bool:
        """Keyboard-interactive is never accepted."""
        return False

    def public_key_auth_supported(self) -> bool:
        """Public keys are the only way in."""
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Accept root (and the copy account, for rsync only) with a key authorized through the API or listed in the
        instance's authorized_keys."""
        return username in ("root", RSYNC_USER) and self._owner.accepts(key)


class InstanceSSH:
    """One emulated instance's SSH server on 127.0.0.1: key auth only, user root, exec + shell + SFTP.

    Its methods are called from any thread but the loop's (they block on ``LoopThread.run``). As with OpenSSH, an exec
    session ends when the command exited AND its stdout/stderr reached EOF: a background job that keeps them open
    holds the session until the client closes the channel, which kills the command's process group.
    """

    def __init__(
        self,
        loop: LoopThread,
        sandbox: Sandbox,
        host_key: asyncssh.SSHKey,
        host: str = "127.0.0.1",
        rsync_modules: tuple[str, ...] = (),
    ) -> None:
        self._loop = loop
        self.rsync_modules = rsync_modules  # what vastai_kaalia's rsync daemon serves: the sandbox, by these names
        self._sandbox = sandbox
        self._host_key = host_key
        self.host = host
        self._reservation: socket.socket | None = bound_socket(host, 0)
        self.port: int = self._reservation.getsockname()[1]
        self._lock = threading.Lock()
        self._keys_lock = threading.Lock()
        self._keys: frozenset[bytes] = frozenset()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._children: set[asyncio.subprocess.Process] = set()
        self._sessions: set[asyncio.Future[object]] = set()

    def __repr__(self) -> str:
        state = "released" if self._reservation is None else "open" if self.is_open else "closed"
        return f"<InstanceSSH {self.host}:{self.port} {state}>"

    @property
    def is_open(self) -> bool:
        """Whether the server accepts connections."""
        return self._acceptor is not None

    @property
    def connection_count(self) -> int:
        """SSH connections open now: how many a client holds (tests check that workers share one)."""
        return len(self._connections)

    def authorize(self, public_key: str) -> None:
        """Let the holder of ``public_key`` (one OpenSSH line) log in as root on new connections."""
        text = public_key.strip()
        if not text or "\n" in text:
            raise ValueError("expected one OpenSSH public key line, like 'ssh-ed25519 AAAA... comment'")
        try:
            key = asyncssh.import_public_key(text)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ValueError(f"not an OpenSSH public key: {exc}") from None
        with self._keys_lock:
            self._keys = self._keys | {key.public_data}

    def accepts(self, key: asyncssh.SSHKey) -> bool:
        """Whether ``key`` may log in: authorized through the API, or in ``/root/.ssh/authorized_keys`` inside.

        The container's sshd honours that file, and clients rely on it (SkyPilot appends its key in ``onstart``).
        It is read at each attempt, so a key appended a moment ago works and a removed one stops working.
        """
        with self._keys_lock:
            if key.public_data in self._keys:
                return True
        return listed_in_authorized_keys(self._sandbox.root / "root" / ".ssh" / "authorized_keys", key)

    def open(self) -> None:
        """Start accepting on ``port``; returns once listening. Idempotent."""
        with self._lock:
            if self._reservation is None:
                raise RuntimeError(f"{self!r} was released")
            if self._acceptor is not None:
                return
            listener = bound_socket(self.host, self.port)
            try:
                self._acceptor = self._loop.run(self._listen(listener))
            except BaseException:
                listener.close()
                raise

    def close(self) -> None:
        """Stop listening (the port refuses again), drop connections, kill what sessions started. Idempotent."""
        with self._lock:
            self._close_locked()

    def release(self) -> None:
        """Close, and free the port for good (the instance was destroyed)."""
        with self._lock:
            self._close_locked()
            if self._reservation is not None:
                self._reservation.close()
                self._reservation = None

    def _close_locked(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        try:
            self._loop.run(self._shut(acceptor))
        finally:
            self._sandbox.kill_all()
            self._loop.run(self._settle())

    async def _listen(self, listener: socket.socket) -> asyncssh.SSHAcceptor:
        root = self._sandbox.root
        return await asyncssh.listen(
            sock=listener,
            server_factory=lambda: _Gatekeeper(self),
            server_host_keys=[self._host_key],
            process_factory=self._serve,
            sftp_factory=lambda chan: _InstanceSFTP(chan, root),
            allow_scp=True,
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            gss_host=None,
        )

    async def _shut(self, acceptor: asyncssh.SSHAcceptor) -> None:
        acceptor.close()
        await acceptor.wait_closed()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for child in list(self._children):
            _kill_group(child)
        if connections:
            await asyncio.wait([asyncio.ensure_future(conn.wait_closed()) for conn in connections], timeout=5)

    async def _settle(self) -> None:
        """Wait (briefly) for the sessions to see their commands' end, so none outlives the server."""
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=_CLOSE_TIMEOUT_S)

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Run one session's command (or shell) in the sandbox, wired to the channel, and report how it ended."""
        if process.subsystem:
            process.stderr.write(f"subsystem request failed: {process.subsystem}\n".encode())
            process.exit(1)
            return
        if process.get_extra_info("username") == RSYNC_USER:
            await self._serve_rsync(process)
            return
        argv = self._sandbox.command_argv(process.command)
        env = self._sandbox.environment()
        env.update({name: value for name, value in process.env.items() if _is_accepted_env(name)})
        await self._run(process, argv, env)

    async def _serve_rsync(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """The copy account runs nothing but ``rsync --server --daemon``, serving the sandbox as ``C.<id>``.

        The daemon runs on the emulator's side (as Vast's host daemon would, outside the container) with a
        configuration of our own; rsync's daemon keeps every path inside the module (``use chroot = no`` sanitises
        them and munges symlinks). Only the instance's sandbox is reachable, as with SFTP and ``copy_direct``.
        """
        words = shlex.split(process.command or "")
        if not words or os.path.basename(words[0]) != "rsync" or not {"--server", "--daemon"} <= set(words):
            process.stderr.write(f"{RSYNC_USER} serves rsync in daemon mode only (vastai copy)\n".encode())
            process.exit(1)
            return
        rsync = shutil.which("rsync")
        if rsync is None:
            process.stderr.write(b"rsync: command not found (install rsync where the emulator runs)\n")
            process.exit(127)
            return
        fd, config = tempfile.mkstemp(prefix="dumont-rsyncd-", suffix=".conf")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(rsyncd_conf(self._sandbox.root, self.rsync_modules))
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._sandbox.root / "root")}
            await self._run(process, [rsync, "--server", "--daemon", f"--config={config}", "."], env)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(config)

    async def _run(self, process: asyncssh.SSHServerProcess[bytes], argv: list[str], env: dict[str, str]) -> None:
        """Run ``argv`` wired to the session's channel until it ends or the client hangs up."""
        # No real terminal is allocated; with a pty requested, stderr joins stdout as it would on one.
        merged = process.get_terminal_type() is not None
        try:
            child = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group, killed if the client hangs up early
            )
        except OSError as exc:
            process.stderr.write(f"dumont emulator: cannot start {argv[0]}: {exc}\n".encode())
            process.exit(127)
            return
        session = asyncio.current_task()
        assert session is not None
        self._children.add(child)
        self._sessions.add(session)
        feeding = asyncio.ensure_future(_feed(process, child))
        finished = asyncio.ensure_future(_finish(process, child))
        hung_up = asyncio.ensure_future(process.wait_closed())
        try:
            await asyncio.wait({finished, hung_up}, return_when=asyncio.FIRST_COMPLETED)
            if finished.done():
                _report_exit(process, finished.result())
            else:  # the client hung up first
                _kill_group(child)
            feeding.cancel()
            # Outputs are read to EOF even with nobody listening, so that the child's pipes close and it is reaped.
            await finished
        finally:
            feeding.cancel()
            hung_up.cancel()
            self._children.discard(child)
            self._sessions.discard(session)
            process.close()


async def _feed(process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process) -> None:
    """Copy the channel's data to the command's stdin and close it at EOF; forward signals the client sends."""
    assert child.stdin is not None
    try:
        while True:
            try:
                chunk = await process.stdin.read(_CHUNK)
            except asyncssh.SignalReceived as received:
                _signal_group(child, received.signal)
                continue
            except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                continue
            if not chunk:
                break
            child.stdin.write(chunk)
            await child.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return  # the command stopped reading its stdin
    finally:
        child.stdin.close()


async def _pump(source: asyncio.StreamReader | None, sink: asyncssh.SSHWriter[bytes]) -> None:
    """Copy one of the command's outputs to the channel until EOF (then discarding, once the channel is gone)."""
    if source is None:  # stderr merged into stdout
        return
    forwarding = True
    while chunk := await source.read(_CHUNK):
        if forwarding:
            try:
                sink.write(chunk)
                await sink.drain()
            except (OSError, asyncssh.Error):
                forwarding = False


async def _finish(process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process) -> int:
    """Wait for stdout and stderr to reach EOF and the command to exit; return its returncode."""
    await asyncio.gather(_pump(child.stdout, process.stdout), _pump(child.stderr, process.stderr))
    return await child.wait()


def _report_exit(process: asyncssh.SSHServerProcess[bytes], returncode: int) -> None:
    """Send exit-status, or exit-signal when a signal ended the command."""
    if process.is_closing():
        return
    if returncode >= 0:
        process.exit(returncode)
        return
    try:
        name = signal.Signals(-returncode).name.removeprefix("SIG")
    except ValueError:
        process.exit(128 - returncode)
        return
    process.exit_with_signal(name)


def _signal_group(child: asyncio.subprocess.Process, name: str) -> None:
    """Deliver a signal the client asked for (by SSH name, e.g. ``INT``) to the command's process group."""
    try:
        signum = signal.Signals[f"SIG{name}"]
        os.killpg(child.pid, signum)
    except (KeyError, ProcessLookupError, PermissionError):
        pass


def _kill_group(child: asyncio.subprocess.Process) -> None:
    """SIGKILL the command's process group (it leads one: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
