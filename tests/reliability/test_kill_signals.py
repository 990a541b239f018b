"""pytest killed with SIGINT, SIGTERM or SIGKILL at each point of an instance's life: every instance is destroyed.

Each case runs pytest in a subprocess against an emulator in this process (which outlives it), holds the run at one
point (search, create, wait for running, test body, teardown), sends the signal, and polls the emulator until
nothing is live. SIGINT and SIGTERM are handled by pytest itself (KeyboardInterrupt through the fixture teardown);
SIGKILL leaves it to the watchdog, which also removes the session's private SSH key. The time from the signal to the
confirmed destroy is recorded, not asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polling import record_figure, wait_for

INNER_CONFTEST = '''
import os
import time
from pathlib import Path

import pytest_dumont.ssh.keys as keys
import pytest_dumont.vast.client as client

POINT = os.environ["KILL_POINT"]
generate = keys.SessionKey.generate
CONFIG = []


def pytest_configure(config):
    CONFIG.append(config)


def cancelled():
    """Whether the session has cancelled its prewarm thread, the one that searches and creates."""
    from pytest_dumont.session.prewarm import prewarmed

    warm = prewarmed(CONFIG[0]) if CONFIG else None
    return warm is not None and warm.background.cancelled


def generate_and_tell(directory, comment):
    """Where the session's private key is: it must be gone once the run is over, however it ended."""
    key = generate(directory, comment)
    Path("keypath").write_text(str(key.private_path))
    return key


keys.SessionKey.generate = generate_and_tell


def hold_at(method, point, after=False, hold=False):
    """Mark the moment the run reaches ``point`` (a file); ``hold`` stays there, ``after`` once the call answered."""
    original = getattr(client.VastClient, method)

    def wrapped(self, *args, **kwargs):
        if POINT == point and not after:
            Path(point).touch()
            if hold == "until cancelled":  # a slow call that answers once the session has given up on it
                deadline = time.monotonic() + 120
                while not cancelled() and time.monotonic() < deadline:
                    time.sleep(0.01)
            elif hold:
                time.sleep(120)  # a slow call: a rate-limited search, a destroy that takes its time
        result = original(self, *args, **kwargs)
        if POINT == point and after:
            Path(point).touch()
            time.sleep(120)  # the window between a create's answer and the watchdog hearing of it
        return result

    setattr(client.VastClient, method, wrapped)


# Held until cancelled, not for 120 s: the session would wait 10 s for its prewarm thread (BackgroundProvisioning's
# join), then leave it behind; that give-up is tested in test_prewarm_cancel.py. The create must never follow.
hold_at("search_offers", "search", hold="until cancelled")
hold_at("create_instance", "create", after=True)
hold_at("show_instance", "wait")
hold_at("destroy_instance", "teardown", hold=True)
'''

INNER_TEST = """
import time
from pathlib import Path


def test_gpu(vast_gpu):
    Path("body").touch()
    if Path("hold_body").exists():
        time.sleep(120)
"""

POINTS = ("search", "create", "wait", "body", "teardown")


def _deliverable_sigint() -> None:
    """Undo an inherited SIG_IGN: a suite started as a background job (``cmd &``) ignores SIGINT, and Python then
    installs no KeyboardInterrupt handler, so the SIGINT cases would test the shell, not pytest-dumont."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_killed_pytest_leaves_nothing_running(tmp_path: Path, make_emulator, point: str, signum: int):
    emulator = make_emulator(profile="manual" if point == "wait" else "fast")
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    if point == "body":
        (tmp_path / "hold_body").touch()
    env = {**os.environ, "VAST_API_KEY": emulator.api_key, "KILL_POINT": point}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q"]
    argv += ["--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", "--dumont-poll-max=0.2"]
    inner = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_deliverable_sigint,
    )
    try:
        wait_for(lambda: (tmp_path / point).exists() or inner.poll() is not None, what=f"the run to reach {point}")
        assert inner.poll() is None, inner.communicate()[0].decode()
        inner.send_signal(signum)
        killed_at = time.time()
        output = inner.communicate(timeout=60)[0].decode()
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
    if signum == signal.SIGKILL:
        assert inner.returncode == -signal.SIGKILL
    else:
        assert inner.returncode == pytest.ExitCode.INTERRUPTED, output

    wait_for(lambda: not emulator.world.live_ids(), what="every instance to be destroyed")
    key = Path((tmp_path / "keypath").read_text())
    wait_for(lambda: not key.exists(), what="the session's private key to be removed (SIGKILL: by the watchdog)")
    history = emulator.world.history()
    assert len(history) == (0 if point == "search" else 1)
    assert all(row["destroyed"] for row in history)
    for row in history:
        record_figure(
            "kill",
            signal=signal.Signals(signum).name,
            point=point,
            seconds_to_destroy=max(0.0, row["destroyed_at"] - killed_at),
        )
