"""What ``--dumont-remote`` refuses before anything is rented or sent, each with what to do instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_cassette_replay_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_gpu="def test_x(): pass\n")
    result = pytester.runpytest_subprocess("--dumont-remote")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--dumont-remote runs the tests on a rented instance, which a cassette cannot replay*"]
    )
    result.stderr.fnmatch_lines(["*use --dumont-mode=emulator*or --dumont-mode=live / -m real_gpu*"])


def test_a_tree_over_the_cap_is_refused_before_anything_is_rented(
    pytester: pytest.Pytester, vast_emulator, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    pytester.makepyfile(test_gpu="def test_x(): pass\n")
    (pytester.path / "weights.bin").write_bytes(os.urandom(300_000))
    result = pytester.runpytest_subprocess(
        "--dumont-mode=emulator",
        f"--dumont-api-url={vast_emulator.url}",
        "--dumont-remote",
        "--dumont-remote-max-mb=0.2",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the working tree to send is 0.3 MB in * files, over --dumont-remote-max-mb=0.2; nothing was sent*"]
    )
    result.stderr.fnmatch_lines(["*Largest: weights.bin (0.3 MB)*raise --dumont-remote-max-mb*"])
    assert vast_emulator.world.history() == []  # nothing was created


def test_no_ssh_client_is_a_usage_error(
    pytester: pytest.Pytester, vast_emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    pytester.makepyfile(test_gpu="def test_x(): pass\n")
    empty = tmp_path / "no-ssh-here"
    empty.mkdir()
    monkeypatch.setenv("VAST_API_KEY", vast_emulator.api_key)
    monkeypatch.setenv("PATH", str(empty))  # the inner run starts from sys.executable's absolute path
    result = pytester.runpytest_subprocess(
        "--dumont-mode=emulator",
        f"--dumont-api-url={vast_emulator.url}",
        "--dumont-remote",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dumont-remote needs the OpenSSH client (`ssh`) on this runner*openssh-client*"])
    assert vast_emulator.world.history() == []
