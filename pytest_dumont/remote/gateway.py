"""What pytest-xdist needs to reach the instances: an ssh config of the session, ``--tx`` specs, and worker args.

execnet's ssh gateway runs the OpenSSH client: ``ssh -C -F CONFIG HOST 'PYTHON -c "<bootstrap>"'`` and speaks
over its stdin and stdout. The config written here pins everything to the session: one ``Host`` per instance with
its address and port, the session's private key only (``IdentitiesOnly``), the session's own ``known_hosts``
(recorded when the provisioning first connected; ``StrictHostKeyChecking yes``), no agent, no user config (``-F``
replaces it).

On a POSIX runner each host also has a ``ControlPath`` in the session's directory: ``start_master`` opens one SSH
connection per instance while the setup runs, and the workers' ssh clients open their sessions over it instead of
making a connection (key exchange, authentication) each. Without it (not started, or gone) they connect directly.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

HOST_ALIAS = "dumont-remote"
# Options of the controller only: never sent to the workers, which may not have the plugins that own them.
# (pytest-dumont's own and pytest-html's; xdist's own options are fine: the workers have xdist.)
CONTROLLER_ONLY_WITH_VALUE = ("--html", "--css")
CONTROLLER_ONLY_FLAGS = ("--self-contained-html",)


class NoSSHClient(Exception):
    """The runner has no ``ssh`` binary for execnet to start."""


def require_ssh_client() -> str:
    found = shutil.which("ssh")
    if found is None:
        raise NoSSHClient(
            "--dumont-remote needs the OpenSSH client (`ssh`) on this runner: pytest-xdist's SSH gateway starts it. "
            "Install it (Debian/Ubuntu: apt-get install -y openssh-client; macOS has it) and run again"
        )
    return found


def _quote_config(value: str) -> str:
    return f'"{value}"' if any(c.isspace() for c in value) else value


def host_alias(index: int) -> str:
    """The ssh config's name for the session's ``index``-th instance (0-based): ``dumont-remote``, ``-2``, ..."""
    return HOST_ALIAS if index == 0 else f"{HOST_ALIAS}-{index + 1}"


def control_path(directory: Path, index: int) -> Path:
    """The socket of the ``index``-th instance's master connection (short: a socket path has about 100 bytes)."""
    return directory / f"mux-{index}"


def write_ssh_config(
    path: Path, hosts: Sequence[tuple[str, int]], key: Path, known_hosts: Path, control_dir: Path | None = None
) -> None:
    """Write the session's ssh config (0600, in the session's 0700 directory): one ``Host`` per instance."""
    lines: list[str] = []
    for index, (host, port) in enumerate(hosts):
        lines += [f"Host {host_alias(index)}", f"  HostName {host}", f"  Port {port}"]
        if control_dir is not None:
            lines.append(f"  ControlPath {_quote_config(str(control_path(control_dir, index)))}")
        lines += _host_options(key, known_hosts)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines))


def _host_options(key: Path, known_hosts: Path) -> list[str]:
    return [
        "  User root",
        f"  IdentityFile {_quote_config(str(key))}",
        "  IdentitiesOnly yes",
        "  IdentityAgent none",
        "  ForwardAgent no",
        "  PasswordAuthentication no",
        "  KbdInteractiveAuthentication no",
        f"  UserKnownHostsFile {_quote_config(str(known_hosts))}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 30",
        # A silent peer (the instance gone, a dead link) ends the gateway in about a minute, not at TCP's timeout.
        "  ServerAliveInterval 15",
        "  ServerAliveCountMax 4",
        "  LogLevel ERROR",
        "",
    ]


def start_master(ssh_config: Path, index: int) -> subprocess.Popen[bytes] | None:
    """Open the ``index``-th instance's master connection in the background (OpenSSH's ``ControlMaster``).

    It runs until the session terminates it; the workers started meanwhile connect directly. None where OpenSSH
    has no connection sharing (Windows).
    """
    if os.name != "posix":
        return None
    command = ["ssh", "-F", str(ssh_config), "-N", "-o", "ControlMaster=yes", host_alias(index)]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_master(master: subprocess.Popen[bytes]) -> None:
    """End a master connection (and with it any session still using it)."""
    if master.poll() is None:
        master.terminate()
        try:
            master.wait(5)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


def tx_specs(ssh_config: Path, python: str, remote_dir: str, workers: int, alias: str = HOST_ALIAS) -> list[str]:
    """One execnet spec per worker process on the instance ``alias`` names in the ssh config."""
    spec = f"ssh_config={ssh_config}//ssh={alias}//python={python}//chdir={remote_dir}"
    return [spec] * workers


def worker_args(
    args: Sequence[str],
    positionals: Iterable[str],
    value_options: Iterable[str],
    invocation_dir: Path,
    rootdir: Path,
    remote_dir: str,
) -> list[str]:
    """The command line the workers parse: ours and the controller's reporting options out, test paths remapped.

    A test path (``tests/test_gpu.py::test_x``, relative to where pytest was started) becomes the same path in the
    synced tree on the instance. xdist relates an argument that exists on the runner to its rsync roots, and this
    session has none: the remapped paths do not exist here, so they reach the workers as they are.
    """
    value_options = tuple(value_options) + CONTROLLER_ONLY_WITH_VALUE
    positional = set(positionals)
    out: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name.startswith("--dumont-") or name in CONTROLLER_ONLY_WITH_VALUE or name in CONTROLLER_ONLY_FLAGS:
            skip_next = "=" not in arg and name in value_options
            continue
        if arg in positional:
            out.append(remote_path(arg, invocation_dir, rootdir, remote_dir))
            continue
        out.append(arg)
    return out


class OutsideRootdir(Exception):
    """A test path outside the rootdir: the sync sends only the rootdir."""


def remote_path(arg: str, invocation_dir: Path, rootdir: Path, remote_dir: str) -> str:
    path, sep, rest = arg.partition("::")
    local = (invocation_dir / path).resolve()
    try:
        relative = local.relative_to(rootdir.resolve())
    except ValueError:
        raise OutsideRootdir(
            f"{path} is outside the rootdir {rootdir}: --dumont-remote sends the rootdir's tree only. "
            "Run pytest from the project, or pass --rootdir"
        ) from None
    mapped = posixpath.join(remote_dir, relative.as_posix()) if relative.parts else remote_dir
    return mapped + sep + rest
