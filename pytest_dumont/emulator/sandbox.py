"""The private filesystem and process view that one emulated instance's commands get, with a fake ``nvidia-smi``."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .nvidia_smi import GpuFacts as GpuFacts  # re-exported: callers build sandboxes with it
from .nvidia_smi import render_nvidia_smi

MOUNT_NAMESPACE = "mount-namespace"
USER_NAMESPACE = "user-namespace"
NO_ISOLATION = "none"
_ISOLATIONS = (MOUNT_NAMESPACE, USER_NAMESPACE, NO_ISOLATION)

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Without a namespace, sandbox processes are found by this variable in /proc/<pid>/environ.
_MARKER = "DUMONT_SANDBOX"
_KILL_DEADLINE_S = 10.0
_EXEC_WINDOW_S = 0.05  # how long an empty environment is read again: an execve takes well under a millisecond
_PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags: a kernel thread

# The namespace holder: bind the sandbox's directories over /workspace, /root and /tmp in a private mount namespace,
# from bin/, and stay there (so /proc/<holder>/cwd reaches nvidia-smi even when /tmp or /root hide the sandbox root's
# path) waiting for EOF on stdin, which comes when the sandbox is cleaned up or the emulator process dies. Sources are
# relative and not canonicalised, so they resolve from the holder's cwd even after a mount hides the root's path.
_HOLDER_SCRIPT = """set -e
cd "$1/bin"
mount --no-canonicalize --bind ../workspace /workspace
mount --no-canonicalize --bind ../root /root
mount --no-canonicalize --bind ../tmp /tmp
echo ready
exec cat >/dev/null
"""
_UNSHARE = {
    MOUNT_NAMESPACE: ["unshare", "-m", "--propagation", "private"],
    USER_NAMESPACE: ["unshare", "-r", "-m", "--propagation", "private"],
}


@functools.cache
def detect_isolation() -> str:
    """Find, once per process, the strongest isolation this host allows: a root mount namespace, a user one, none."""
    candidates = (MOUNT_NAMESPACE, USER_NAMESPACE) if os.geteuid() == 0 else (USER_NAMESPACE,)
    return next((isolation for isolation in candidates if isolation_works(isolation)), NO_ISOLATION)


@functools.cache
def isolation_works(isolation: str) -> bool:
    """Whether commands can get a private /workspace this way here (probed once: unshare and a bind mount)."""
    if isolation == NO_ISOLATION:
        return True
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.makedirs("/workspace", exist_ok=True)  # the bind mount needs a mount point on the host
    if not os.path.isdir("/workspace"):
        return False
    probe = [*_UNSHARE[isolation], "/bin/sh", "-c", "mount --bind /workspace /workspace"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.cache
def _nsenter_has_wdns() -> bool:
    """Whether nsenter can chdir inside the namespace (``--wdns``, util-linux >= 2.38)."""
    try:
        done = subprocess.run(["nsenter", "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--wdns" in done.stdout


class Sandbox:
    """The private filesystem view one emulated instance's commands see.

    ``isolation`` is decided once per process (``detect_isolation``):

    - ``mount-namespace`` (root) and ``user-namespace`` (``unshare -rm``): a holder process keeps a private mount
      namespace where ``/workspace``, ``/root`` and ``/tmp`` are bind mounts of ``root/workspace``, ``root/root`` and
      ``root/tmp``; every command joins it with ``nsenter`` (about 1.3 ms to spawn, against 4.5 ms for a fresh
      ``unshare`` and three mounts per command: ``bench/bench_ssh_sandbox.py``). ``nvidia-smi`` is on PATH as
      ``/proc/<holder>/cwd/nvidia-smi``, which stays reachable even when ``root`` lies under ``/tmp`` or ``/root``.
      Commands start in ``/workspace`` with ``HOME=/root``.
    - ``none``: commands run with cwd ``root/workspace``, ``HOME=root/root`` and ``TMPDIR=root/tmp``. ``/workspace``
      is then NOT private: a command that writes to the absolute path ``/workspace`` writes to the host's.
    """

    def __init__(
        self, root: Path, gpu: GpuFacts, env: Mapping[str, str] | None = None, *, isolation: str | None = None
    ) -> None:
        self.root = Path(root).absolute()
        self.workspace = self.root / "workspace"
        self.gpu = gpu
        self.isolation = isolation or detect_isolation()
        if self.isolation not in _ISOLATIONS:
            raise ValueError(f"isolation must be one of {_ISOLATIONS}, got {self.isolation!r}")
        self._env = dict(env or {})
        self._token = hashlib.sha256(os.urandom(16)).hexdigest()[:16]
        self._lock = threading.Lock()
        self._utilization = 0
        self._holder: subprocess.Popen[bytes] | None = None
        self._namespace = ""
        self._cleaned = False
        self._torn_down = False
        for directory, mode in ((self.workspace, 0o755), (self.root / "root", 0o700), (self.root / "tmp", 0o1777)):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode)
        (self.root / "bin").mkdir(exist_ok=True)
        self._write_nvidia_smi()
        if self.isolation != NO_ISOLATION:
            self._start_holder()

    def _start_holder(self) -> None:
        argv = [*_UNSHARE[self.isolation], "/bin/sh", "-c", _HOLDER_SCRIPT, "dumont-holder", str(self.root)]
        holder = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        assert holder.stdout is not None
        assert holder.stderr is not None
        if holder.stdout.readline() != b"ready\n":
            holder.kill()
            _, err = holder.communicate()
            raise RuntimeError(f"could not set up the sandbox's mount namespace: {err.decode(errors='replace')}")
        holder.stdout.close()
        holder.stderr.close()
        self._holder = holder
        self._namespace = os.readlink(f"/proc/{holder.pid}/ns/mnt")

    @property
    def holder_pid(self) -> int | None:
        """The pid of the process that keeps the mount namespace alive (None without isolation or once cleaned)."""
        return self._holder.pid if self._holder is not None else None

    def set_gpu_utilization(self, percent: float) -> None:
        """Make ``nvidia-smi`` report ``percent`` as utilization.gpu from now on."""
        if math.isnan(percent) or not 0 <= percent <= 100:
            raise ValueError(f"GPU utilization is a percentage in [0, 100], got {percent}")
        with self._lock:
            self._utilization = round(percent)
            self._write_nvidia_smi()

    def _write_nvidia_smi(self) -> None:
        script = self.root / "bin" / "nvidia-smi"
        staged = script.with_name(".nvidia-smi.new")
        seed = hashlib.sha256(str(self.root).encode()).hexdigest()
        staged.write_text(render_nvidia_smi(self.gpu, self._utilization, seed))
        staged.chmod(0o755)
        os.replace(staged, script)  # atomic: a running nvidia-smi keeps reading the old one

    def command_argv(self, command: str | None) -> list[str]:
        """The argv that runs ``command`` with ``/bin/sh -c`` inside the sandbox (None: a shell reading stdin)."""
        shell = ["/bin/sh", "-c", command] if command is not None else ["/bin/sh", "-s"]
        if self._holder is None:
            if self._cleaned:
                raise RuntimeError(f"sandbox {self.root} was cleaned up")
            return ["env", "-C", str(self.workspace), *shell]
        pid = self._holder.pid
        argv = ["nsenter"]
        if self.isolation == USER_NAMESPACE:
            argv += ["--preserve-credentials", f"--user=/proc/{pid}/ns/user"]
        argv.append(f"--mount=/proc/{pid}/ns/mnt")
        if _nsenter_has_wdns():
            return [*argv, "--wdns=/workspace", *shell]
        return [*argv, "/bin/sh", "-c", 'cd /workspace && exec "$@"', "sh", *shell]

    def environment(self) -> dict[str, str]:
        """The environment of a sandbox process: nvidia-smi first on PATH, HOME=/root, then the instance's own."""
        env = {"USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh"}
        if self._holder is not None:
            env.update(PATH=f"/proc/{self._holder.pid}/cwd:{_SYSTEM_PATH}", HOME="/root")
        else:
            env.update(
                PATH=f"{self.root / 'bin'}:{_SYSTEM_PATH}",
                HOME=str(self.root / "root"),
                TMPDIR=str(self.root / "tmp"),
                **{_MARKER: self._token},
            )
        env.update(self._env)
        return env

    def spawn(self, script: str, *, log_name: str) -> int:
        """Start ``script`` in the background in the sandbox (as Vast runs ``onstart``); output to ``root/log_name``.

        Returns the pid. Nobody waits for it: ``kill_all`` (stop, destroy) ends it and whatever it started.
        """
        with open(self.root / log_name, "ab") as log:
            child = subprocess.Popen(
                self.command_argv(script),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
            )
        threading.Thread(target=child.wait, name=f"dumont-onstart-{child.pid}", daemon=True).start()  # reap it
        return child.pid

    def kill_all(self) -> None:
        """SIGKILL every process started in this sandbox, including daemons that left their session (not the holder)."""
        deadline = time.monotonic() + _KILL_DEADLINE_S
        while time.monotonic() < deadline:
            pidfds = [fd for fd in map(self._kill_member, self._members()) if fd is not None]
            if not pidfds:
                return
            try:
                _wait_for_exit(pidfds, deadline)
            finally:
                for fd in pidfds:
                    os.close(fd)
        raise RuntimeError(f"processes of sandbox {self.root} survived SIGKILL for {_KILL_DEADLINE_S} s")

    def _members(self) -> list[int]:
        """Pids of the processes in this sandbox."""
        if self._torn_down:
            return []
        spared = {os.getpid(), self._holder.pid if self._holder is not None else -1}
        return [
            pid
            for pid in (int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit())
            if pid not in spared and self._is_member(pid)
        ]

    def _is_member(self, pid: int) -> bool:
        """Whether ``pid`` is in this sandbox's mount namespace or, without one, carries its marker variable."""
        try:
            if self._namespace:
                return os.readlink(f"/proc/{pid}/ns/mnt") == self._namespace
            return f"{_MARKER}={self._token}\0".encode() in _environ(pid)
        except OSError:  # gone, a zombie, or not ours to look at
            return False

    def _kill_member(self, pid: int) -> int | None:
        """SIGKILL ``pid`` through a pidfd and return the pidfd to wait on; None if it is gone or no longer ours."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return None
        try:
            if self._is_member(pid):  # checked again through the pidfd's process: the pid was not reused meanwhile
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                return fd
        except OSError:
            pass
        os.close(fd)
        return None

    def cleanup(self) -> None:
        """Kill everything, end the namespace holder and remove ``root``. Idempotent."""
        with self._lock:
            if self._cleaned:
                return
            self._cleaned = True
        try:
            self.kill_all()
        finally:
            holder, self._holder = self._holder, None
            if holder is not None:
                _end_holder(holder)
            self._torn_down = True
            if self.root.exists():
                shutil.rmtree(self.root)


def _environ(pid: int) -> bytes:
    """``pid``'s environment, read again while it reads empty because the process is inside ``execve``.

    The new image has no environment until the kernel has loaded it: a scan landing there would miss a member that
    lives on (a ``setsid sleep`` still being exec'd at cleanup). Zombies and kernel threads have none for good.
    """
    deadline = time.monotonic() + _EXEC_WINDOW_S
    while True:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        if environ or not _may_be_execing(pid) or time.monotonic() > deadline:
            return environ
        time.sleep(0.001)


def _may_be_execing(pid: int) -> bool:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0] not in ("Z", "X") and not int(fields[6]) & _PF_KTHREAD


def _wait_for_exit(pidfds: list[int], deadline: float) -> None:
    """Block until every pidfd reports its process exited, or the deadline passes."""
    poller = select.poll()
    for fd in pidfds:
        poller.register(fd, select.POLLIN)
    remaining = len(pidfds)
    while remaining and time.monotonic() < deadline:
        events = poller.poll(max(1, int((deadline - time.monotonic()) * 1000)))
        for fd, _ in events:
            poller.unregister(fd)
            remaining -= 1


def _end_holder(holder: subprocess.Popen[bytes]) -> None:
    """Close the holder's stdin (it exits on EOF), and kill it if it lingers."""
    assert holder.stdin is not None
    holder.stdin.close()
    try:
        holder.wait(5)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait()
