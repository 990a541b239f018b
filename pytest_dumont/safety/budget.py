"""Budgets that act before money is spent, and a per-test time limit that stops an overrunning test.

Projection (what ``--dumont-budget`` is checked against before each create):

    spent so far (dph_total x wall, per instance: the upper estimate)
    + (the $/h of every live instance + the offer's $/h) x horizon

where the horizon is the boot deadline + the SSH deadline + ``--dumont-max-minutes``: the longest a new instance can
take to come up plus the longest one test may hold it. While instances exist, a meter thread checks the spend every
poll interval and, when the next interval would pass the budget, destroys them and fails the running test; so the
budget is never passed by more than one interval of spend (in practice not at all). The same thread stops a test that
runs past ``--dumont-max-minutes``: it destroys the test's instance, then interrupts the main thread with
``SIGUSR1`` (a real signal, so that a blocking call returns too) and the test fails with ``TestTimeExceeded``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest

from pytest_dumont.clock import Clock
from pytest_dumont.errors import BudgetExceeded, DumontError, TestTimeExceeded
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.vast.models import Offer

INTERRUPT_SIGNAL = signal.SIGUSR1


def budget_text(usd: float) -> str:
    """``$1``, ``$0.25``, ``$0.000001``: a budget as it would be typed, never in exponent notation."""
    if usd >= 0.000001:
        return "$" + f"{usd:.6f}".rstrip("0").rstrip(".")
    return f"${usd:.2e}"  # below a millionth of a dollar only the exponent says how small


@dataclass(frozen=True)
class Budget:
    """The session's spending cap and how far ahead a rental's cost is projected."""

    limit_usd: float
    horizon_s: float
    disk_gb: float

    def projected(self, offer: Offer, ledger: Ledger, now: float) -> float:
        offer_dph = max(offer.dph_total, offer.dph_base + offer.storage_dph(self.disk_gb))
        live_dph = sum(r.dph_total for r in ledger.live())
        return ledger.simple_cost(now) + (live_dph + offer_dph) * self.horizon_s / 3600.0

    def refusal(self, offer: Offer, ledger: Ledger, now: float) -> str | None:
        """Why renting ``offer`` now would risk passing the budget, or None when it fits."""
        projected = self.projected(offer, ledger, now)
        if projected <= self.limit_usd:
            return None
        return (
            f"offer {offer.id} ({offer.gpu_name}, ${offer.dph_total:.4f}/h) projects ${projected:.4f} "
            f"(spent ${ledger.simple_cost(now):.4f} + the $/h of every instance x {self.horizon_s:g} s: "
            f"boot and SSH deadlines + --dumont-max-minutes), over --dumont-budget={budget_text(self.limit_usd)}. "
            "Raise the budget, or shorten --dumont-max-minutes or --dumont-boot-timeout"
        )


class MainThreadInterrupter:
    """Raises an exception in the main thread from another thread, waking it from a blocking call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: BaseException | None = None
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(INTERRUPT_SIGNAL, self._on_signal)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(INTERRUPT_SIGNAL, self._previous)
            self._installed = False

    def interrupt(self, exc: BaseException) -> bool:
        with self._lock:
            if not self._installed:
                return False
            self._pending = exc
        ident = threading.main_thread().ident
        assert ident is not None
        signal.pthread_kill(ident, INTERRUPT_SIGNAL)
        return True

    def clear(self) -> None:
        with self._lock:
            self._pending = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            exc, self._pending = self._pending, None
        if exc is not None:
            raise exc


@dataclass
class _RunningTest:
    nodeid: str
    instance: Any
    deadline: float
    fired: bool = False


class SpendMeter:
    """A thread that watches the session's spend and the running test's time, every ``tick`` seconds."""

    def __init__(
        self,
        budget: Budget,
        ledger: Ledger,
        clock: Clock,
        *,
        tick: float,
        max_test_s: float,
        on_budget: Callable[[str], None],
        on_overtime: Callable[[Any, str], None],
    ) -> None:
        self.budget = budget
        self.ledger = ledger
        self.clock = clock
        self.tick = tick
        self.max_test_s = max_test_s
        self._on_budget = on_budget
        self._on_overtime = on_overtime
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._test: _RunningTest | None = None
        self._thread: threading.Thread | None = None
        self.budget_hit: str | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dumont-spend-meter", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def test_started(self, nodeid: str, instance: Any) -> None:
        with self._lock:
            self._test = _RunningTest(nodeid, instance, self.clock.now() + self.max_test_s)

    def test_finished(self) -> None:
        with self._lock:
            self._test = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.check()
            except Exception as exc:  # the meter must keep running: record and go on
                self.errors.append(f"{type(exc).__name__}: {exc}")
                wait = self.tick
            self._stop.wait(max(0.01, wait))

    def check(self) -> float:
        """One look at spend and time; returns how long until the next look should happen."""
        now = self.clock.now()
        live = self.ledger.live()
        if live and self.budget_hit is None:
            burn = sum(r.dph_total for r in live)
            spent = self.ledger.simple_cost(now)
            if spent + burn * self.tick / 3600.0 >= self.budget.limit_usd:
                self.budget_hit = (
                    f"the session's spend reached ${spent:.6f} of --dumont-budget={budget_text(self.budget.limit_usd)} "
                    f"(burning ${burn:.4f}/h): every instance was destroyed before passing it"
                )
                self._on_budget(self.budget_hit)
        with self._lock:
            test = self._test
            if test is None:
                return self.tick
            if now >= test.deadline and not test.fired:
                test.fired = True
                minutes = self.max_test_s / 60.0
                self._on_overtime(
                    test.instance,
                    f"{test.nodeid} ran past --dumont-max-minutes={minutes:g} ({self.max_test_s:g} s): "
                    f"stopped, and its instance {getattr(test.instance, 'id', '?')} destroyed",
                )
                return self.tick
            return min(self.tick, max(0.0, test.deadline - now)) if not test.fired else self.tick


# --- the session's guard: what the pytest hooks below reach through config.stash ----------------------------------


@dataclass
class SessionGuard:
    """The spend meter, the interrupter and the pool, for the hooks; plus what the terminal summary must shout."""

    pool: Any
    meter: SpendMeter
    interrupter: MainThreadInterrupter
    keep_on_failure: bool
    warnings: list[str] = field(default_factory=list)
    kept_note: str = ""  # what happens to a kept instance later (the dead-man switch stays armed)
    budget_hit: str | None = None  # why the meter stopped the session at its budget, for reports and annotations

    def overtime(self, instance: Any, message: str) -> None:
        """On the meter's thread: destroy first (money), then stop the test."""
        try:
            self.pool.evict(instance)
        except DumontError as exc:
            message += f"; but the destroy failed: {exc.message}"
            self.warnings.append(message)
        self.interrupter.interrupt(TestTimeExceeded(message))

    def over_budget(self, message: str) -> None:
        """On the meter's thread: destroy every instance, then fail whatever test is running."""
        self.budget_hit = message
        for record in self.pool.provisioner.ledger.live():
            if record.instance_id in self.pool.provisioner.kept:
                continue
            try:
                self.pool.provisioner.destroy(record)
            except DumontError as exc:
                self.warnings.append(f"budget stop: {exc.message}")
        self.warnings.append(message)
        self.interrupter.interrupt(BudgetExceeded(message))


GUARD_KEY = pytest.StashKey[SessionGuard]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    guard = item.config.stash.get(GUARD_KEY, None)
    instance = getattr(item, "funcargs", {}).get("vast_gpu")
    if guard is None or instance is None:
        return (yield)
    guard.meter.test_started(item.nodeid, instance)
    try:
        return (yield)
    finally:
        guard.meter.test_finished()
        guard.interrupter.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    guard = item.config.stash.get(GUARD_KEY, None)
    instance = getattr(item, "funcargs", {}).get("vast_gpu")
    if guard is None or instance is None or not guard.keep_on_failure:
        return report
    if report.when == "call" and report.failed:
        keep_after_failure(guard, instance, item.nodeid)
    return report


def keep_after_failure(guard: SessionGuard, instance: Any, what: str, detail: str = "") -> str | None:
    """Leave ``instance`` running after ``what`` failed (``--dumont-keep-on-failure``), saying how to reach and end it.

    Once per instance; an instance destroyed meanwhile (max-minutes, budget) is not kept. ``detail`` says what the
    person will find there. Returns the warning (also in the terminal summary) when the instance is kept now.
    """
    record = instance.record
    provisioner = guard.pool.provisioner
    if record.instance_id in provisioner.kept or not record.live:
        return None
    provisioner.keep(record)
    warning = (
        f"KEPT instance {instance.id} ({instance.label}, ${instance.dph_total:.4f}/h) after {what} "
        f"failed: IT IS STILL BILLING.{detail} The session key is gone: attach yours with "
        f'`vastai attach ssh {instance.id} "$(cat ~/.ssh/id_ed25519.pub)"`; destroy it with '
        f"`vastai destroy instance {instance.id}` or `dumont reap --include-kept`{guard.kept_note}"
    )
    guard.warnings.append(warning)
    return warning


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    guard = config.stash.get(GUARD_KEY, None)
    if guard is None:
        return
    for warning in [*guard.warnings, *guard.meter.errors]:
        terminalreporter.write_line(f"DUMONT WARNING: {warning}", red=True, bold=True)
