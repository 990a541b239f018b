"""Everything a recording run writes goes through the secret guard, with every key the run held, and is clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from polling import wait_for

from pytest_dumont.safety.ledger_file import LedgerFile


def check_secrets(paths: list[Path], patterns: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest_dumont.cli", "check-secrets", *map(str, paths)]
    for pattern in patterns:
        argv += ["--pattern", pattern]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False)


def test_every_artifact_of_a_recording_run_is_free_of_secrets(
    pytester, monkeypatch, make_emulator, private_state, tmp_path
):
    emulator = make_emulator()
    key_dump = tmp_path / "session-key"  # outside everything scanned: what the run must never have written out
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    monkeypatch.setenv("KEY_DUMP", str(key_dump))
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile("""
        import os
        from pathlib import Path

        def test_gpu(dumont_pool, ssh_session):
            Path(os.environ["KEY_DUMP"]).write_text(dumont_pool.provisioner.ssh_key.private_path.read_text())
            assert ssh_session.run("env | grep -c CONTAINER_API_KEY", hide=True).ok

        def test_fails(ssh_session):
            ssh_session.run("echo $CONTAINER_API_KEY >/dev/null && false", hide=True)
    """)
    result = pytester.runpytest_subprocess(
        "--dumont-mode=emulator",
        f"--dumont-api-url={emulator.url}",
        "--dumont-record-mode=rewrite",
        "--html=report.html",
        "--self-contained-html",
        "--dumont-json=report.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=1, failed=1)
    output = pytester.path / "pytest-output.txt"
    output.write_text("\n".join(result.outlines + result.errlines))
    artifacts = [
        pytester.path / "report.html",
        pytester.path / "report.json",
        summary,
        pytester.path / "cassettes",
        output,
        private_state,  # the ledger file (and the watchdog's log, had the run needed it)
    ]
    assert all(p.exists() for p in artifacts), [str(p) for p in artifacts if not p.exists()]
    assert list((pytester.path / "cassettes").rglob("*.yaml"))
    # Every instance was destroyed by the session itself: its watchdog had nothing to do and removes its log on exit
    # (waited for, so that the scan below does not race the removal). The ledger file stays, and is scanned.
    wait_for(lambda: not list(private_state.glob("watchdog-*.log")), what="the watchdog to remove its uneventful log")
    assert LedgerFile(private_state / "ledger.json").entries()

    instance_keys = [emulator.world.instance_api_key(h["id"]) for h in emulator.world.history()]
    private_lines = [
        line for line in key_dump.read_text().splitlines() if len(line) >= 16 and "PRIVATE KEY" not in line
    ]
    assert instance_keys and private_lines
    patterns = [re.escape(secret) for secret in [emulator.api_key, *instance_keys, *private_lines]]
    env = {"VAST_API_KEY": emulator.api_key}

    clean = check_secrets(artifacts, patterns, env)
    assert clean.returncode == 0, clean.stdout
    scanned = re.search(r"(\d+) file\(s\) clean", clean.stdout)
    assert scanned and int(scanned.group(1)) >= 7  # html, json, summary, output, ledger, cassettes (3)

    planted = tmp_path / "planted" / "debug.log"  # the guard must be able to fail this test
    planted.parent.mkdir()
    planted.write_text(f"onstart env: CONTAINER_API_KEY={instance_keys[0]}\n")
    caught = check_secrets([*artifacts, planted.parent], patterns, env)
    assert caught.returncode == 1
    assert f"{planted}:1:" in caught.stdout
