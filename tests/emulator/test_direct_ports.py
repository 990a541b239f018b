"""Reaching an instance as third-party clients do, over real SSH and TCP: keys written into ``authorized_keys``
inside it, ports mapped through ``env``, runtype ``args`` running its command, and the direct endpoint."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import paramiko
import pytest
from api_waits import history, keypair, wait_for

from pytest_dumont.emulator.portmap import direct_host


def ssh(host: str, port: int, key: paramiko.PKey) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - a throwaway local server
    client.connect(host, port=port, username="root", pkey=key, allow_agent=False, look_for_keys=False, timeout=10)
    return client


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, _ = client.exec_command(command)
    return str(stdout.read().decode())


def logs_in(host: str, port: int, key: paramiko.PKey) -> bool:
    try:
        ssh(host, port, key).close()
    except paramiko.AuthenticationException:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def booted(api: Any, instance_id: int) -> dict[str, Any]:
    wait_for(lambda: history(api, instance_id)["ssh_up"], "SSH up")
    return dict(api.row(instance_id))


# -- 2: authorized_keys inside the instance --------------------------------------------------------------------------


def test_a_key_appended_to_authorized_keys_inside_the_instance_logs_in(make_emulator, make_api):
    """SkyPilot's way: ``echo KEY >> ~/.ssh/authorized_keys`` in onstart, a key the API never saw."""
    api = make_api(make_emulator(profile="fast"))
    onstart_key, onstart_public = keypair()
    stranger, _ = keypair()
    script = f"mkdir -p ~/.ssh && echo '{onstart_public}' >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys"
    row = booted(api, api.create(onstart=script))
    proxy = (row["ssh_host"], row["ssh_port"])
    wait_for(lambda: logs_in(*proxy, onstart_key), "the onstart's key to log in")
    client = ssh(*proxy, onstart_key)
    try:
        assert run(client, "whoami").strip() == "root"
    finally:
        client.close()
    assert not logs_in(*proxy, stranger)


# -- 3 and 5: mapped ports and the direct endpoint ---------------------------------------------------------------


def test_a_port_mapped_in_env_reaches_a_listener_inside_the_instance(make_emulator, make_api):
    api = make_api(make_emulator(profile="fast"))
    key, public = keypair()
    assert api.post("/api/v0/ssh/", json={"ssh_key": public}).ok
    inner = free_port()
    # A server inside the sandbox, on the port the instance asked to map (the sandbox shares the host's network).
    server = (
        "python3 -c 'import socket; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f's.bind(("127.0.0.1", {inner})); s.listen(); '
        'c = s.accept()[0]; c.sendall(b"hello from inside"); c.close()\''
    )
    row = booted(api, api.create(env={f"-p {inner}:{inner}": "1"}, onstart=server))
    assert set(row["ports"]) == {"22/tcp", f"{inner}/tcp"}
    mapped = int(row["ports"][f"{inner}/tcp"][0]["HostPort"])
    assert mapped != inner
    public_address = (row["public_ipaddr"], mapped)

    def answer() -> bytes:
        with socket.create_connection(public_address, timeout=10) as conn:
            return conn.recv(100)

    assert wait_for(answer, "the inner server to answer through the mapped port") == b"hello from inside"
    client = ssh(row["public_ipaddr"], int(row["ports"]["22/tcp"][0]["HostPort"]), key)
    try:
        # Inside, as on Vast: VAST_TCP_PORT_<n> names the external port of each mapping.
        assert run(client, f"echo $VAST_TCP_PORT_22 $VAST_TCP_PORT_{inner}").split() == [
            row["ports"]["22/tcp"][0]["HostPort"],
            str(mapped),
        ]
    finally:
        client.close()


def test_direct_and_proxy_are_distinct_endpoints_that_both_close_on_stop(make_emulator, make_api):
    api = make_api(make_emulator(profile="fast"))
    key, public = keypair()
    assert api.post("/api/v0/ssh/", json={"ssh_key": public}).ok
    instance_id = api.create(runtype="ssh_direc ssh_proxy")
    row = booted(api, instance_id)
    direct = (row["public_ipaddr"], int(row["ports"]["22/tcp"][0]["HostPort"]))
    proxy = (row["ssh_host"], row["ssh_port"])
    assert direct[0] == direct_host()
    assert direct != proxy
    assert row["machine_dir_ssh_port"] != row["ssh_port"]
    for endpoint in (direct, proxy):
        client = ssh(*endpoint, key)
        try:
            assert run(client, "echo $CONTAINER_ID").strip() == str(instance_id)
        finally:
            client.close()
    assert api.put(f"/api/v0/instances/{instance_id}/", json={"state": "stopped"}).ok
    for endpoint in (direct, proxy):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(endpoint, timeout=10).close()


def test_direct_127_0_0_2_binds_here():
    """The emulator's direct address is a second loopback address on Linux (it falls back to 127.0.0.1 elsewhere)."""
    assert direct_host() == "127.0.0.2"


@pytest.mark.parametrize(
    ("runtype", "env", "expected"),
    [
        ("ssh_proxy", {}, set()),
        ("ssh", {}, set()),
        ("ssh_direc ssh_proxy", {}, {"22/tcp"}),
        ("jupyter_direc ssh_direc ssh_proxy", {}, {"22/tcp", "8080/tcp"}),
        ("ssh_direc", {"-p 10022:10022": "1"}, {"22/tcp", "10022/tcp"}),  # dstack's create
        ("args", {"-p 8080:8080": "1", "-p 5353:5353/udp": "1"}, {"8080/tcp"}),
    ],
)
def test_ports_list_what_the_runtype_and_env_map(api, runtype, env, expected):
    instance_id = api.create(runtype=runtype, env=env)
    api.advance(instance_id, 2)
    assert set(api.row(instance_id)["ports"]) == expected


# -- 4: runtype args -------------------------------------------------------------------------------------------------


def test_runtype_args_runs_onstart_as_the_program_with_args(make_emulator, make_api, tmp_path: Path):
    """dstack's create: ``runtype: args``, ``onstart: /bin/sh``, ``args: ["-c", setup]``."""
    api = make_api(make_emulator(profile="fast", workdir=tmp_path))
    setup = 'echo "runner up in $CONTAINER_ID" > /root/runner.txt; exec sleep 600'
    instance_id = api.create(runtype="args", onstart="/bin/sh", args=["-c", setup], env={"-p 10022:10022": "1"})
    marker = tmp_path / f"C.{instance_id}" / "root" / "runner.txt"
    expected = f"runner up in {instance_id}\n"
    wait_for(lambda: marker.exists() and marker.read_text() == expected, "the args command to write its line")
    row = api.row(instance_id)
    assert row["status_msg"].endswith("/args")
    assert row["image_args"] == ["-c", setup]


def test_runtype_args_without_ssh_servers_records_the_command(emulator, api):
    instance_id = api.create(runtype="args", onstart="/bin/sh", args=["-c", "echo hi"])
    api.advance(instance_id, 2)
    host = emulator.world.host(instance_id)
    assert host.mains == ["/bin/sh -c 'echo hi'"]
    assert host.onstarts == []
