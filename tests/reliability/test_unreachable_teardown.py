"""An API that stops answering before teardown, in a real pytest run: loud, recorded, and reaped later."""

from __future__ import annotations

import os
import subprocess
import sys

from polling import wait_for

from pytest_dumont.emulator import Faults
from pytest_dumont.safety.ledger_file import LedgerFile


def test_a_teardown_the_api_refuses_is_loud_recorded_and_reaped_later(
    pytester, monkeypatch, make_emulator, private_state
):
    emulator = make_emulator()
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    monkeypatch.setenv("EMULATOR_URL", emulator.url)
    pytester.makepyfile("""
        import os
        import requests

        def test_the_api_goes_down(ssh_session):
            assert ssh_session.run("true").ok
            down = requests.post(os.environ["EMULATOR_URL"] + "/_emulator/faults", json={"rate_5xx": 1.0}, timeout=10)
            assert down.ok
    """)
    result = pytester.runpytest_subprocess(  # its own process: `dumont reap` spares a session still running
        "--dumont-mode=emulator",
        f"--dumont-api-url={emulator.url}",
        "--dumont-api-retry-seconds=0.3",
        "--dumont-teardown-retry-seconds=0.3",  # the destroys too (300 s by default), the watchdog's included
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=1, errors=1)
    (instance_id,) = emulator.world.live_ids()
    result.stdout.fnmatch_lines([f"*TEARDOWN ERROR: could not confirm that instance(s) {instance_id} *`dumont reap`*"])
    ledger = LedgerFile(private_state / "ledger.json")
    # The watchdog, told goodbye with the instance still registered, tries too, fails, and says so in its log.
    (log,) = private_state.glob("watchdog-*.log")
    wait_for(lambda: "done in" in log.read_text(), timeout=60, what="the watchdog to give up")
    assert f"COULD NOT DESTROY instance {instance_id}" in log.read_text()
    assert {e.instance_id: e.state for e in ledger.entries()} == {instance_id: "teardown_failed"}

    emulator.world.set_faults(Faults())  # the API is back
    env = {**os.environ, "VAST_URL": emulator.url}
    reaped = subprocess.run(
        [sys.executable, "-m", "pytest_dumont.cli", "reap"], capture_output=True, text=True, env=env, timeout=60
    )
    assert reaped.returncode == 0, reaped.stdout + reaped.stderr
    assert f"destroyed instance {instance_id}" in reaped.stdout
    assert emulator.world.live_ids() == []
    assert {e.instance_id: e.state for e in ledger.entries()} == {instance_id: "destroyed"}
