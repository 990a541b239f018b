"""The emulated instance SSH server, driven over real sockets by paramiko and fabric as the plugin drives it."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import asyncssh
import paramiko
import pytest
from fabric import Config, Connection
from sandbox_waits import is_gone, wait_until

from pytest_dumont.emulator.loop import LoopThread
from pytest_dumont.emulator.sandbox import NO_ISOLATION, GpuFacts, Sandbox
from pytest_dumont.emulator.sshd import InstanceSSH


class ClientKey(NamedTuple):
    pkey: paramiko.PKey
    public_line: str


def make_client_key() -> ClientKey:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="dumont-test")
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.export_private_key().decode()))
    return ClientKey(pkey, key.export_public_key().decode().strip())


@pytest.fixture(scope="module")
def host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture(scope="module")
def client_key() -> ClientKey:
    return make_client_key()


@pytest.fixture
def make_server(
    loop_thread: LoopThread, host_key: asyncssh.SSHKey, client_key: ClientKey, tmp_path: Path
) -> Iterator[Callable[..., InstanceSSH]]:
    """Build open instance SSH servers (each with its own sandbox), authorized for ``client_key``."""
    made: list[tuple[InstanceSSH, Sandbox]] = []

    def make(name: str = "instance", *, authorize: bool = True, opened: bool = True) -> InstanceSSH:
        box = Sandbox(tmp_path / name, GpuFacts(), {"CONTAINER_ID": name})
        server = InstanceSSH(loop_thread, box, host_key)
        made.append((server, box))
        if authorize:
            server.authorize(client_key.public_line)
        if opened:
            server.open()
        return server

    yield make
    for server, box in made:
        server.release()
        box.cleanup()


@pytest.fixture
def server(make_server: Callable[..., InstanceSSH]) -> InstanceSSH:
    return make_server()


@pytest.fixture
def connect(client_key: ClientKey, host_key: asyncssh.SSHKey) -> Iterator[Callable[..., paramiko.SSHClient]]:
    """Open paramiko clients (TCP_NODELAY, no agent, no ~/.ssh) to a server; all are closed after the test."""
    clients: list[paramiko.SSHClient] = []
    known_host = paramiko.Ed25519Key(data=host_key.public_data)

    def open_client(server: InstanceSSH, pkey: paramiko.PKey | None = None, user: str = "root") -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())  # the server must present the host key it got
        client.get_host_keys().add(f"[{server.host}]:{server.port}", "ssh-ed25519", known_host)
        clients.append(client)
        client.connect(
            server.host,
            server.port,
            username=user,
            pkey=pkey or client_key.pkey,
            sock=nodelay_socket(server),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        return client

    yield open_client
    for client in clients:
        client.close()


def nodelay_socket(server: InstanceSSH) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Ran(NamedTuple):
    status: int
    stdout: str
    stderr: str


def execute(client: paramiko.SSHClient, command: str, stdin: bytes = b"") -> Ran:
    """Run one exec request; return its exit status (-1 for a signal), stdout and stderr."""
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    channel.settimeout(10)
    channel.exec_command(command)
    channel.sendall(stdin)
    channel.shutdown_write()
    stdout, stderr = channel.makefile("rb").read(), channel.makefile_stderr("rb").read()
    status = channel.recv_exit_status()
    channel.close()
    return Ran(status, stdout.decode(), stderr.decode())


def refuses(server: InstanceSSH) -> bool:
    try:
        socket.create_connection((server.host, server.port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_refused_until_open_then_refused_again_after_close(
    make_server: Callable[..., InstanceSSH], connect: Callable[..., paramiko.SSHClient]
) -> None:
    server = make_server(opened=False)
    assert not server.is_open
    assert refuses(server)
    server.open()
    server.open()  # idempotent
    assert server.is_open
    assert execute(connect(server), "echo up").stdout == "up\n"
    server.close()
    server.close()  # idempotent
    assert not server.is_open
    assert refuses(server)


def test_a_closed_server_keeps_its_port_reserved_and_release_frees_it(make_server: Callable[..., InstanceSSH]) -> None:
    server = make_server()
    server.close()
    intruder = socket.socket()
    with pytest.raises(OSError, match="in use") as caught:
        intruder.bind((server.host, server.port))
    assert caught.value.errno == errno.EADDRINUSE
    intruder.close()
    server.release()
    server.release()  # idempotent
    with socket.socket() as successor:
        successor.bind((server.host, server.port))
    with pytest.raises(RuntimeError, match="released"):
        server.open()


def test_an_unknown_key_is_rejected(server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(server, pkey=make_client_key().pkey)


def test_only_root_may_log_in(server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(server, user="ubuntu")


def test_passwords_are_not_offered(server: InstanceSSH) -> None:
    with paramiko.Transport(nodelay_socket(server)) as transport:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType) as caught:
            transport.auth_password("root", "hunter2")
    assert caught.value.allowed_types == ["publickey"]


def test_a_key_authorized_later_works_for_new_connections(
    make_server: Callable[..., InstanceSSH], connect: Callable[..., paramiko.SSHClient]
) -> None:
    server = make_server(authorize=False)
    late = make_client_key()
    with pytest.raises(paramiko.AuthenticationException):
        connect(server, pkey=late.pkey)
    server.authorize(late.public_line)
    assert execute(connect(server, pkey=late.pkey), "whoami").stdout == "root\n"


@pytest.mark.parametrize("text", ["", "not a key", "ssh-ed25519 AAAAnotbase64", "ssh-ed25519 AAAA\nssh-rsa AAAA"])
def test_authorize_refuses_what_is_not_one_public_key(server: InstanceSSH, text: str) -> None:
    with pytest.raises(ValueError, match="public key"):
        server.authorize(text)


def test_exec_returns_stdout_stderr_and_exit_status(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    ran = execute(connect(server), "echo out; echo err >&2; echo $CONTAINER_ID; exit 3")
    assert ran == Ran(3, "out\ninstance\n", "err\n")


def test_stdin_is_piped_to_the_command(server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]) -> None:
    payload = b"".join(b"line %d\n" % i for i in range(20000))  # bigger than a channel window
    ran = execute(connect(server), "wc -l", stdin=payload)
    assert ran.stdout.strip() == "20000"


def test_a_signal_ending_the_command_is_reported_as_exit_signal(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    assert execute(connect(server), "kill -KILL $$").status == -1  # paramiko's value for exit-signal


def test_a_shell_request_runs_a_shell_reading_stdin(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    transport = connect(server).get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    channel.settimeout(10)
    channel.invoke_shell()
    channel.sendall(b"echo from-shell; pwd; exit 5\n")
    assert channel.makefile("rb").read() == b"from-shell\n/workspace\n"
    assert channel.recv_exit_status() == 5


def test_a_client_closing_the_channel_kills_the_command(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    transport = connect(server).get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    channel.settimeout(10)
    channel.exec_command("sleep 1000 & echo $!; wait")
    sleeper = int(channel.makefile("rb").readline())
    assert not is_gone(sleeper)
    channel.close()
    assert wait_until(lambda: is_gone(sleeper))


def test_workspace_is_private_per_instance(
    make_server: Callable[..., InstanceSSH], connect: Callable[..., paramiko.SSHClient]
) -> None:
    first, second = make_server("first"), make_server("second")
    if first._sandbox.isolation == NO_ISOLATION:
        pytest.skip("no namespaces here: /workspace is shared")
    same = f"/workspace/dumont-{uuid.uuid4().hex}.txt"
    for server in (first, second):
        ran = execute(connect(server), f"echo $CONTAINER_ID > {same}")
        assert ran.status == 0, ran.stderr
    for server, name in ((first, "first"), (second, "second")):
        assert execute(connect(server), f"cat {same}").stdout == f"{name}\n"
    assert not Path(same).exists()


def test_sftp_paths_are_the_instance_paths(server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]) -> None:
    client = connect(server)
    with client.open_sftp() as sftp:
        sftp.putfo(io.BytesIO(b"uploaded\n"), "/workspace/in.txt")
        sftp.putfo(io.BytesIO(b"home\n"), "relative.txt")
        sftp.putfo(io.BytesIO(b"scratch\n"), "/tmp/scratch.txt")
        assert sftp.normalize(".") == "/root"
        ran = execute(
            client, "cat /workspace/in.txt /root/relative.txt /tmp/scratch.txt; echo made > /workspace/out.txt"
        )
        assert ran.stdout == "uploaded\nhome\nscratch\n"
        downloaded = io.BytesIO()
        sftp.getfo("/workspace/out.txt", downloaded)
    assert downloaded.getvalue() == b"made\n"
    assert (server._sandbox.workspace / "in.txt").read_bytes() == b"uploaded\n"


def test_sftp_cannot_escape_the_sandbox(server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]) -> None:
    with connect(server).open_sftp() as sftp:
        sftp.putfo(io.BytesIO(b"x"), "/../../../../escape.txt")
        assert sftp.normalize("/../..") == "/"
    assert (server._sandbox.root / "escape.txt").exists()
    assert not Path("/escape.txt").exists()


def test_nvidia_smi_answers_the_seed_query_over_ssh(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    ran = execute(connect(server), "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader")
    assert ran == Ran(0, "NVIDIA GeForce RTX 4090, 580.95.05, 24564 MiB\n", "")
    server._sandbox.set_gpu_utilization(42)
    assert execute(connect(server), "nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader").stdout == "42 %\n"


def test_close_drops_connections_and_kills_daemons(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    client = connect(server)
    daemon = int(execute(client, "setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $!").stdout)
    assert not is_gone(daemon)
    server.close()
    assert wait_until(lambda: is_gone(daemon))
    transport = client.get_transport()
    assert transport is not None
    assert wait_until(lambda: not transport.is_active())


def test_stop_then_start_keeps_files(server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]) -> None:
    assert execute(connect(server), "echo kept > /workspace/kept.txt").status == 0
    server.close()
    assert refuses(server)
    server.open()
    assert execute(connect(server), "cat /workspace/kept.txt").stdout == "kept\n"


def test_fabric_runs_commands_and_transfers_files(server: InstanceSSH, client_key: ClientKey, tmp_path: Path) -> None:
    config = Config(overrides={"load_ssh_configs": False})
    connect_kwargs = {"pkey": client_key.pkey, "look_for_keys": False, "allow_agent": False}
    local = tmp_path / "local.txt"
    local.write_text("via fabric\n")
    with Connection(server.host, user="root", port=server.port, config=config, connect_kwargs=connect_kwargs) as conn:
        conn.put(str(local), "/workspace/local.txt")
        result = conn.run("cat local.txt && nvidia-smi -L", hide=True, in_stream=False)
        assert result.stdout.startswith("via fabric\nGPU 0: NVIDIA GeForce RTX 4090")
        failed = conn.run("exit 9", hide=True, warn=True, in_stream=False)
        assert failed.exited == 9
        conn.get("/workspace/local.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "via fabric\n"


def test_no_asyncssh_warnings_when_clients_disconnect(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = connect(server)
    execute(client, "true")
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    channel.exec_command("sleep 1000 & echo $!; wait")
    sleeper = int(channel.makefile("rb").readline())
    transport.sock.close()  # drop TCP mid-command, no SSH goodbye
    assert wait_until(lambda: is_gone(sleeper))
    client.close()
    assert [record for record in caplog.records if record.name.startswith("asyncssh")] == []


def test_loop_thread_runs_coroutines_and_cancels_timers_from_other_threads() -> None:
    loop = LoopThread()
    loop.start()
    loop.start()  # idempotent
    try:

        async def answer() -> int:
            return 42

        assert loop.run(answer()) == 42
        cancelled, later = threading.Event(), threading.Event()
        loop.call_later(0.01, cancelled.set).cancel()
        loop.call_later(0.02, later.set)  # timers fire in deadline order: the cancelled one would have run first
        soon = threading.Event()
        loop.call_soon(soon.set)
        assert soon.wait(10)
        assert later.wait(10)
        assert not cancelled.is_set()
    finally:
        loop.stop()
        loop.stop()  # idempotent
    assert loop.loop.is_closed()


def test_loop_thread_stop_cancels_pending_tasks() -> None:
    loop = LoopThread()
    started = threading.Event()
    outcome: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    loop.start()
    loop.call_soon(lambda: asyncio.ensure_future(forever()))
    assert started.wait(10)
    loop.stop()
    assert outcome == ["cancelled"]
    with pytest.raises(RuntimeError, match="stopped"):
        loop.start()


def test_with_a_pty_requested_stderr_arrives_on_stdout(
    server: InstanceSSH, connect: Callable[..., paramiko.SSHClient]
) -> None:
    transport = connect(server).get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=10)
    channel.settimeout(10)
    channel.get_pty()
    channel.exec_command("echo out; echo err >&2")
    assert channel.makefile("rb").read() == b"out\nerr\n"
    assert channel.recv_exit_status() == 0


def test_close_leaves_no_session_running_on_the_loop(
    sandbox: Sandbox, host_key: asyncssh.SSHKey, client_key: ClientKey, connect: Callable[..., paramiko.SSHClient]
) -> None:
    loop = LoopThread()
    server = InstanceSSH(loop, sandbox, host_key)
    try:
        server.authorize(client_key.public_line)
        server.open()
        transport = connect(server).get_transport()
        assert transport is not None
        flooding, waiting = transport.open_session(timeout=10), transport.open_session(timeout=10)
        flooding.settimeout(10)
        flooding.exec_command("echo $$; exec yes")
        waiting.exec_command("cat")
        flooder = int(flooding.makefile("rb").readline())
        # Unread, its output fills the channel window, the server's buffer and the pipe: only then does `yes` block.
        assert wait_until(lambda: "pipe_write" in Path(f"/proc/{flooder}/wchan").read_text())
        server.close()

        async def pending() -> list[asyncio.Task[object]]:
            return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

        assert loop.run(pending()) == []
    finally:
        server.release()
        loop.stop()
