"""The ``dumont`` command as users run it: a real subprocess, its output and exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

DUMONT = [sys.executable, "-m", "pytest_dumont.cli"]


def test_help_lists_the_subcommands():
    done = subprocess.run([*DUMONT, "--help"], capture_output=True, text=True, check=True)
    assert "emulator" in done.stdout


def test_no_subcommand_is_a_usage_error():
    done = subprocess.run(DUMONT, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "usage: dumont" in done.stderr


def test_unknown_subcommand_is_a_usage_error():
    done = subprocess.run([*DUMONT, "teleport"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "invalid choice: 'teleport'" in done.stderr


def test_emulator_subcommand_passes_its_options_through():
    done = subprocess.run([*DUMONT, "emulator", "--help"], capture_output=True, text=True, check=True)
    assert "--profile" in done.stdout and "--time-factor" in done.stdout
    assert done.stdout.startswith("usage: dumont emulator [-h]")  # the command typed, not python -m ...
    assert "pytest_dumont.emulator" not in done.stdout


def test_emulator_usage_errors_name_the_command_typed():
    done = subprocess.run([*DUMONT, "emulator", "--port", "x"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "dumont emulator: error: argument --port: not a port number: 'x'" in done.stderr


def test_test_subcommand_help_says_further_arguments_go_to_pytest():
    done = subprocess.run([*DUMONT, "test", "--help"], capture_output=True, text=True, check=True)
    assert "usage: dumont test [-h] [--real | --replay] NAME [PYTEST ARGUMENTS...]" in done.stdout
    assert "Any further argument goes to pytest as it is" in " ".join(done.stdout.split())


def test_emulator_subcommand_serves_until_sigterm():
    proc = subprocess.Popen(
        [*DUMONT, "emulator", "--no-ssh", "--quiet", "--api-key", "cli-key"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        answer = requests.get(f"{url}/api/v0/users/current", headers={"Authorization": "Bearer cli-key"}, timeout=10)
        assert answer.status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
