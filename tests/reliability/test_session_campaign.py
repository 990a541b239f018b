"""A whole-session fault campaign: seeded pytest sessions against one emulator that outlives them; nothing may leak.

Each session is a real pytest run in a subprocess, from a whole market (the emulator is reset), with a random mix:
prewarming on or off, ``-n 0/2/3`` with the instance shared or per worker, factory rentals, failing tests,
``--dumont-max-minutes`` overruns and budget hits, API fault bursts (429/5xx, lost create answers, slow destroys,
offers taken, instances that never boot), SSH that drops, and a signal (none, SIGINT to the process group as a
terminal's Ctrl-C sends it, SIGTERM or SIGKILL to pytest or to its whole group) at a random moment or at a chosen
one: while prewarming rents, while xdist starts its workers, when the session's end begins.

After each session: every instance destroyed within 10 s of the session's end or of the signal (after SIGKILL by the
watchdog); the ledger file parses and holds no instance as live that the emulator has destroyed; no process of the
session left (pytest, xdist workers, the watchdog) and no sandbox holder of the emulator without a live instance; no
private key left under the session's temporary directory. The CI slice runs ~20 sessions; ``-m chaos`` runs 200.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from polling import record_figure, wait_for

from pytest_dumont.emulator import CREATE_FAULTS, Faults
from pytest_dumont.safety.ledger_file import LedgerFile

SEED = 20261207
DESTROY_WITHIN_S = 10.0
SESSION_TIMEOUT_S = 120.0
SIGNALS = ("none", "none", "SIGINT", "SIGTERM", "SIGKILL")
MOMENTS = ("random", "prewarm", "workers", "teardown")

INNER_CONFTEST = """
import os
from pathlib import Path

import pytest

MARKS = Path(os.environ["CHAOS_MARKS"])


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        (MARKS / "started").touch()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    (MARKS / "workers").touch()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        (MARKS / "teardown").touch()
"""


@dataclass
class Session:
    """One session's draw: what it runs, with which options, which faults, and which signal when."""

    index: int
    prewarm: bool
    workers: int
    xdist_mode: str
    factory: bool
    failing: bool
    overrun: bool
    budget: bool
    faults: Faults
    ssh_drop: bool
    signal: str
    to_group: bool  # the signal goes to the whole process group (a terminal's Ctrl-C, a CI runner's kill of the tree)
    moment: str
    delay: float
    injected: list[str] = field(default_factory=list)

    def tests(self) -> str:
        body = [
            "import time",
            "",
            "def test_cpu_first():",
            "    time.sleep(0.3)  # the workload before the GPU tests: prewarming boots meanwhile",
            "",
            "def test_gpu_ssh(ssh_session):",
            "    assert ssh_session.run('echo ok', hide=True).stdout == 'ok\\n'",
            "",
            "def test_gpu_again(vast_gpu):",
            "    assert vast_gpu.id > 0",
        ]
        if self.factory:
            body += ["", "def test_factory(dumont_instance_factory):", "    dumont_instance_factory()"]
        if self.failing:
            body += ["", "def test_gpu_fails(vast_gpu):", "    assert False, 'a failing GPU test'"]
        if self.overrun:
            body += ["", "def test_gpu_overruns(vast_gpu):", "    time.sleep(3)  # past --dumont-max-minutes"]
        return "\n".join(body) + "\n"

    def argv(self, url: str) -> list[str]:
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        argv += ["--dumont-mode=emulator", f"--dumont-api-url={url}", "--dumont-poll-max=0.1"]
        argv += ["--dumont-boot-timeout=2", "--dumont-ssh-timeout=2", "--dumont-api-retry-seconds=3"]
        argv += ["--dumont-avoid-failed-hours=0"]  # each session meets its own faults, not the last one's machines
        argv += [f"--dumont-prewarm={'on' if self.prewarm else 'off'}", "-n", str(self.workers)]
        if self.workers:
            argv.append(f"--dumont-xdist={self.xdist_mode}")
        if self.overrun:
            argv.append("--dumont-max-minutes=0.02")  # 1.2 s
        if self.budget:
            argv.append("--dumont-budget=0.0001")  # a few seconds of an instance: a hit, or a refusal
        return argv


def draw(rng: random.Random, index: int) -> Session:
    create = [rng.choice((*CREATE_FAULTS, None, None, None)) for _ in range(rng.randint(0, 2))]
    burst = rng.random() < 0.3
    faults = Faults(
        rate_429=0.1 if burst else 0.0,
        rate_5xx=0.1 if burst else 0.0,
        retry_after=0,
        create_faults=[f for f in create if f is not None],
        destroy_delay=0.3 if rng.random() < 0.2 else 0.0,
        seed=index,
    )
    workers = rng.choice((0, 0, 0, 2, 3))
    session = Session(
        index=index,
        prewarm=rng.random() < 0.7,
        workers=workers,
        xdist_mode=rng.choice(("shared", "per-worker")),
        factory=rng.random() < 0.3,
        failing=rng.random() < 0.3,
        overrun=rng.random() < 0.15,
        budget=rng.random() < 0.15,
        faults=faults,
        ssh_drop=rng.random() < 0.2,
        signal=rng.choice(SIGNALS),
        to_group=rng.random() < 0.5,
        moment=rng.choice(MOMENTS if workers else tuple(m for m in MOMENTS if m != "workers")),
        delay=rng.uniform(0.0, 4.0),
    )
    session.injected = list(faults.create_faults)
    session.injected += ["api_bursts"] if burst else []
    session.injected += ["slow_destroy"] if faults.destroy_delay else []
    session.injected += ["ssh_drop"] if session.ssh_drop else []
    return session


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a suite started as a background job ignores SIGINT


def processes_with(token: str) -> list[int]:
    """Pids of the processes whose environment carries ``token``: a session's pytest, its workers, its watchdog."""
    needle = f"CHAOS_TOKEN={token}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if needle in Path(f"/proc/{entry.name}/environ").read_bytes():
                    stat = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
                    if stat[0] not in ("Z", "X"):
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def sandbox_holders() -> list[int]:
    """This process's children that hold an emulated instance's mount namespace."""
    me = str(os.getpid())
    holders = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
                if stat[1] == me and b"dumont-holder" in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                    holders.append(int(entry.name))
            except OSError:
                continue
    return holders


def ledger_problems(ledger: LedgerFile, live_ids: set[int], live_labels: set[str]) -> list[str]:
    """Entries that call an instance live when the emulator has destroyed it (a missing entry is caught by label)."""
    problems = []
    for entry in ledger.entries():
        if entry.live and entry.instance_id is not None and entry.instance_id not in live_ids:
            problems.append(f"{entry.label} ({entry.instance_id}) is {entry.state} in the ledger, destroyed in fact")
        if entry.live and entry.instance_id is None and entry.label in live_labels:
            problems.append(f"{entry.label} is live in fact and the ledger does not know its id")
    return problems


def wait_for_moment(inner: subprocess.Popen[bytes], session: Session, marks: Path, emulator, created_before: int):
    """Block until the session reaches its moment (or ends); True if it is still running then."""
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    started = time.monotonic()
    while inner.poll() is None and time.monotonic() < deadline:
        if session.moment == "random" and time.monotonic() - started >= session.delay:
            return True
        if session.moment == "prewarm" and len(emulator.world.history()) > created_before:
            return True
        if session.moment in ("workers", "teardown") and (marks / session.moment).exists():
            return True
        time.sleep(0.005)
    return inner.poll() is None


def drop_ssh_when_up(emulator, inner: subprocess.Popen[bytes], created_before: int) -> None:
    """Close the first instance's SSH server once it answers, then open it again: a network drop mid-session."""
    deadline = time.monotonic() + 10.0
    while inner.poll() is None and time.monotonic() < deadline:
        rows = emulator.world.history()[created_before:]
        live = [r["id"] for r in rows if not r["destroyed"]]
        if live:
            with contextlib.suppress(Exception):  # destroyed meanwhile: nothing to drop
                host = emulator.world.host(live[0])
                host.close()
                host.open()
            return
        time.sleep(0.01)


@dataclass
class Tally:
    sessions: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    moments: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    instances: int = 0
    slowest_destroy_s: float = 0.0
    durations: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def run_session(session: Session, emulator, root: Path, ledger_path: Path, tally: Tally) -> None:
    began = time.monotonic()
    directory = root / f"s{session.index}"
    marks, tmp = directory / "marks", directory / "tmp"
    for d in (marks, tmp):
        d.mkdir(parents=True)
    (directory / "conftest.py").write_text(INNER_CONFTEST)
    (directory / "test_chaos.py").write_text(session.tests())
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        "VAST_API_KEY": emulator.api_key,
        "CHAOS_TOKEN": token,
        "CHAOS_MARKS": str(marks),
        "TMPDIR": str(tmp),
        "DUMONT_LEDGER": str(ledger_path),
    }
    emulator.world.reset()  # a whole market: ``offer_taken`` removes offers until then (the last session was checked)
    created_before = 0
    emulator.world.set_faults(session.faults)
    inner = subprocess.Popen(
        session.argv(emulator.url),
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_restore_sigint,
    )
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(inner.stdout.read() if inner.stdout else b""), daemon=True)
    reader.start()
    dropper = None
    if session.ssh_drop:
        dropper = threading.Thread(target=drop_ssh_when_up, args=(emulator, inner, created_before), daemon=True)
        dropper.start()
    sent = "none"
    reference_mono = reference_wall = 0.0
    try:
        if session.signal != "none" and wait_for_moment(inner, session, marks, emulator, created_before):
            signum = signal.Signals[session.signal]
            if session.to_group or signum == signal.SIGINT:  # Ctrl-C reaches the whole group, workers too
                os.killpg(inner.pid, signum)
            else:
                inner.send_signal(signum)
            sent = session.signal
            reference_mono, reference_wall = time.monotonic(), time.time()
        inner.wait(SESSION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        tally.failures.append(f"session {session.index} hung past {SESSION_TIMEOUT_S:g} s")
    finally:
        if inner.poll() is None:
            os.killpg(inner.pid, signal.SIGKILL)
            inner.wait()
    if sent == "none":
        reference_mono, reference_wall = time.monotonic(), time.time()
    reader.join(10)
    if dropper is not None:
        dropper.join(10)
    tally.signals[sent] += 1
    tally.moments[session.moment if sent != "none" else "-"] += 1
    tally.faults.update(session.injected)
    tally.exits[str(inner.returncode)] += 1
    text = b"".join(output).decode(errors="replace")
    where = f"session {session.index} ({session}, signal sent: {sent}, exit {inner.returncode})"

    def all_destroyed() -> bool:
        return not emulator.world.live_ids()

    try:
        wait_for(all_destroyed, timeout=max(0.1, reference_mono + DESTROY_WITHIN_S - time.monotonic()), what="")
    except AssertionError:
        tally.failures.append(f"{where}: instances {emulator.world.live_ids()} still live 10 s after\n{text}")
        emulator.world.set_faults(Faults())
        emulator.world.shutdown()  # the campaign goes on; the failure is reported at its end
    rows = emulator.world.history()[created_before:]
    tally.instances += len(rows)
    if rows and all(r["destroyed"] for r in rows):
        last = max(r["destroyed_at"] for r in rows) - reference_wall  # from the signal, or the end of the session
        tally.slowest_destroy_s = max(tally.slowest_destroy_s, last)
    emulator.world.set_faults(Faults())
    checks = {
        "a process of the session is left": lambda: not processes_with(token),
        "a private key is left on disk": lambda: not list(tmp.rglob("id_ed25519")),
        "a sandbox holder is left": lambda: not sandbox_holders(),
    }
    for problem, check in checks.items():
        try:
            wait_for(check, timeout=max(0.1, reference_mono + DESTROY_WITHIN_S - time.monotonic()), what=problem)
        except AssertionError:
            tally.failures.append(f"{where}: {problem}\n{text}")
            for pid in processes_with(token):
                os.kill(pid, signal.SIGKILL)
    live_rows = [r for r in emulator.world.history() if not r["destroyed"]]
    problems = ledger_problems(
        LedgerFile(ledger_path), {r["id"] for r in live_rows}, {str(r.get("label")) for r in live_rows}
    )
    if problems:
        tally.failures.append(f"{where}: ledger file: {problems}\n{text}")
    if "INTERNALERROR" in text and sent == "none":
        tally.failures.append(f"{where}: INTERNALERROR\n{text}")
    tally.sessions += 1
    record_figure(
        "session",
        index=session.index,
        signal=sent,
        moment=session.moment,
        workers=session.workers,
        instances=len(rows),
        exit=inner.returncode,
        seconds=time.monotonic() - began,
    )


@pytest.mark.parametrize(
    "sessions", [pytest.param(20, id="ci-slice"), pytest.param(200, id="full", marks=pytest.mark.chaos)]
)
def test_whole_sessions_under_faults_and_signals_leak_nothing(make_emulator, tmp_path, private_state, sessions):
    emulator = make_emulator()
    rng = random.Random(SEED)
    tally = Tally()
    ledger_path = private_state / "ledger.json"
    started = time.monotonic()
    for index in range(sessions):
        began = time.monotonic()
        run_session(draw(rng, index), emulator, tmp_path, ledger_path, tally)
        tally.durations.append(time.monotonic() - began)
    took = time.monotonic() - started
    record_figure(
        "session_campaign",
        sessions=tally.sessions,
        instances=tally.instances,
        signals=dict(tally.signals),
        moments=dict(tally.moments),
        faults=dict(tally.faults),
        exits=dict(tally.exits),
        failures=len(tally.failures),
        slowest_destroy_after_end_or_signal_s=tally.slowest_destroy_s,
        campaign_s=took,
        session_s_median=sorted(tally.durations)[len(tally.durations) // 2],
        session_s_max=max(tally.durations),
    )
    assert tally.failures == [], "\n\n".join(tally.failures)
    assert tally.instances > 0 and sum(tally.signals[s] for s in ("SIGINT", "SIGTERM", "SIGKILL")) > 0
