"""Record against the bundled emulator, then replay with no emulator at all: real pytest runs, real HTTP and SSH."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest

GPU_MODULE = """
import pytest

def test_shell(ssh_session):
    out = ssh_session.run("echo hello; echo oops >&2", hide=True)
    assert out.stdout == "hello\\n" and out.stderr == "oops\\n"
    failed = ssh_session.run("exit 3", hide=True, warn=True)
    assert failed.exited == 3
    with ssh_session.cd("/tmp"), ssh_session.prefix("export WHO=dumont"):  # recorded and matched as given to run()
        assert ssh_session.run("pwd; echo $WHO", hide=True).stdout == "/tmp\\ndumont\\n"

def test_leaky(ssh_session, tmp_path):
    from pytest_dumont.ssh.streams import open_stream

    # Files and streams that hold the instance's own key: their bytes are kept for replay, scrubbed.
    ssh_session.run("echo key=$CONTAINER_API_KEY > /workspace/k", hide=True)
    ssh_session.get("/workspace/k", str(tmp_path / "k"))
    with open_stream(ssh_session, "cat /workspace/k") as stream:
        assert b"".join(iter(stream.recv, b"")).startswith(b"key=")
        assert stream.finish()[0] == 0
    # A test that prints secrets: the instance's own key, the session's public key, a private key block.
    ssh_session.run("echo key=$CONTAINER_API_KEY; "
                    "echo ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0123456789abcdefghijklmnopqrstuv dumont; "
                    "printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\\\nabc\\\\n'; "
                    "printf -- '-----END OPENSSH PRIVATE KEY-----\\\\n'",
                    hide=True)

def test_files(ssh_session, tmp_path):
    local = tmp_path / "up.txt"
    local.write_text("payload")
    ssh_session.put(str(local), "/workspace/up.txt")
    got = ssh_session.get("/workspace/up.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "payload"
"""


def assert_outcomes_or_show(result: pytest.RunResult, **outcomes: int) -> None:
    """``assert_outcomes``, with the inner run's whole output in the failure: a rare failure is then readable."""
    try:
        result.assert_outcomes(**outcomes)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- inner run's output ---\n{result.stdout.str()}\n{result.stderr.str()}"
        ) from None


def recording_against(emulator: Any) -> list[str]:
    """Arguments that record cassettes against ``emulator``, in one process (xdist would split the recording)."""
    return [
        "-p",
        "no:xdist",
        "--dumont-mode=emulator",
        f"--dumont-api-url={emulator.url}",
        "--dumont-record-mode=rewrite",
    ]


@pytest.fixture
def recorded(pytester: pytest.Pytester, vast_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A module recorded against a running emulator; its key is known here so that the cassettes can be grepped."""
    pytester.makepyfile(test_gpu=GPU_MODULE)
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    result = pytester.runpytest(
        *recording_against(vast_emulator),
    )
    assert_outcomes_or_show(result, passed=3)
    monkeypatch.delenv("VAST_API_KEY")
    return result


def cassette_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "cassettes").rglob("*") if p.is_file())


def test_record_writes_one_transcript_per_test_and_one_provisioning_cassette(pytester, recorded):
    names = [p.relative_to(pytester.path / "cassettes").as_posix() for p in cassette_files(pytester.path)]
    assert names[0].startswith("_provisioning/rtx-4090-")
    assert names[1:] == ["test_gpu/test_files.ssh.yaml", "test_gpu/test_leaky.ssh.yaml", "test_gpu/test_shell.ssh.yaml"]
    recorded.stdout.fnmatch_lines(["*dumont: wrote 4 cassette file(s) under *cassettes, scrubbed of secrets*"])


def test_no_secret_reaches_a_cassette(pytester, recorded, vast_emulator):
    instance_keys = [inst.api_key for inst in vast_emulator.world._instances.values()]
    assert instance_keys
    for path in cassette_files(pytester.path):
        text = path.read_text()
        # Bytes kept for replay are base64: a key in them would escape a plain text search.
        for kept in re.findall(r"(?:out_)?content: (\S+)", text):
            text += base64.b64decode(kept).decode("latin-1")
        assert vast_emulator.api_key not in text, path
        for key in instance_keys:
            assert key not in text, path
        assert "PRIVATE KEY" not in text, path
        assert "ssh-ed25519 AAAA" not in text, path
        assert "Authorization" not in text, path
    leaky = (pytester.path / "cassettes" / "test_gpu" / "test_leaky.ssh.yaml").read_text()
    assert "key=***" in leaky and "ssh-ed25519 ***" in leaky
    assert re.search(r"op: stream\n  command: cat /workspace/k", leaky) and "content: a2V5PSoqKgo=" in leaky  # key=***


def test_replay_needs_no_emulator_and_gives_the_same_answers(pytester, recorded, vast_emulator):
    vast_emulator.stop()
    result = pytester.runpytest("-p", "no:xdist", "-rs")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*mode replay (default)*", "*dumont: 3 test(s) replayed from*"])


def test_a_replayed_test_that_opens_a_socket_fails_clearly(pytester, recorded):
    shell = pytester.path / "test_gpu.py"
    shell.write_text(
        shell.read_text().replace(
            'out = ssh_session.run("echo hello',
            'import socket; socket.create_connection(("192.0.2.1", 22), timeout=1)\n'
            '    out = ssh_session.run("echo hello',
        )
    )
    result = pytester.runpytest("-p", "no:xdist", "-k", "shell")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*NetworkBlocked: replay blocks the network, and this test tried to connect to 192.0.2.1:22*"]
    )


def test_a_command_not_in_the_cassette_names_it_the_nearest_and_the_file(pytester, recorded):
    shell = pytester.path / "test_gpu.py"
    shell.write_text(shell.read_text().replace('"exit 3"', '"exit 4"'))
    result = pytester.runpytest("-p", "no:xdist", "-k", "shell")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteError: SSH run 'exit 4' is not in cassette *test_gpu/test_shell.ssh.yaml; "
            "nearest recorded: run exit 3 *"
        ]
    )


def test_a_request_that_was_not_recorded_names_the_missing_cassette(pytester, recorded):
    result = pytester.runpytest("-p", "no:xdist", "-k", "shell", "--dumont-max-dph=0.3")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*CassetteError: cassette *_provisioning/rtx-4090-*.yaml does not exist: record it with*"]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{{{ not yaml", "*is corrupted (not valid YAML at line *): delete it and record it again with*"),
        ("dumont_format: 0\nkind: ssh\n", "*has dumont_format 0, an older format than this pytest-dumont reads (1)*"),
        ("interactions: []\nversion: 1\n", "*is not a pytest-dumont cassette (no dumont_format field*"),
    ],
)
def test_a_bad_cassette_is_an_error_naming_the_file(pytester, recorded, content, message):
    (pytester.path / "cassettes" / "test_gpu" / "test_shell.ssh.yaml").write_text(content)
    result = pytester.runpytest("-p", "no:xdist", "-k", "shell")
    assert_outcomes_or_show(result, errors=1)
    result.stdout.fnmatch_lines([f"*test_gpu/test_shell.ssh.yaml {message.lstrip('*')}"])


def test_a_failed_provisioning_leaves_no_partial_cassette(pytester, vast_emulator, monkeypatch):
    pytester.makepyfile(test_gpu=GPU_MODULE)
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    result = pytester.runpytest(
        *recording_against(vast_emulator),
        "--dumont-max-dph=0.01",
    )
    result.assert_outcomes(errors=3)
    assert not (pytester.path / "cassettes").exists() or cassette_files(pytester.path) == []
    assert os.listdir(pytester.path).count("cassettes") <= 1


HTTP_MODULE = """
import os
import requests

def test_http(vast_gpu):
    url = os.environ.get("EMULATOR_URL", "http://127.0.0.1:9")
    key = os.environ.get("K", "")
    answer = requests.get(url + "/api/v0/users/current/", headers={"Authorization": "Bearer " + key})
    assert answer.status_code == 200
"""


def test_a_test_bodys_own_http_goes_to_a_vcrpy_cassette_and_replays(pytester, vast_emulator, monkeypatch):
    pytester.makepyfile(test_web=HTTP_MODULE)
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    monkeypatch.setenv("K", vast_emulator.api_key)
    monkeypatch.setenv("EMULATOR_URL", vast_emulator.url)
    record = pytester.runpytest(
        *recording_against(vast_emulator),
    )
    record.assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_web" / "test_http.yaml"
    text = cassette.read_text()
    assert "interactions:" in text and "/api/v0/users/current/" in text
    assert vast_emulator.api_key not in text and "Authorization" not in text
    vast_emulator.stop()
    for name in ("VAST_API_KEY", "K"):
        monkeypatch.delenv(name)
    replay = pytester.runpytest("-p", "no:xdist")
    replay.assert_outcomes(passed=1)
