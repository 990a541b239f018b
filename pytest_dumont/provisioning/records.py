"""What each instance of the session cost and where its time went.

Cost model (docs/architecture.md): Vast bills per second, the GPU part (``dph_base``) while the instance runs and
storage (``disk x storage_cost / 720`` per hour) for every second it exists. "While it runs" is a list of spans: a
stop, a reboot, or a status seen that is not ``running`` (exited, offline) closes the open span; a start that is seen
running opens the next. The *billed estimate* follows that model; the *simple* figure is ``dph_total x wall``,
the offer's hourly price times the time from the search to the confirmed destroy. Both are reported, labelled.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pytest_dumont.vast.models import Offer, StatusChange

if TYPE_CHECKING:
    from pytest_dumont.clock import Clock

PROVISIONING_PHASES = ("search", "create", "wait_running", "wait_ssh", "adopt")


@dataclass(frozen=True)
class PhaseTiming:
    """One timed step: a provisioning phase, an SSH command, or a phase a test names itself."""

    name: str
    started: float  # clock seconds
    duration: float
    outcome: str = "passed"  # "passed" | "failed"
    instance_id: int | None = None
    kind: str = "provision"  # "provision" | "command" | "user" | "remote"
    test: str | None = None  # the node id of the test that ran it; None for the lifecycle's own phases
    depth: int = 0  # how many of the test's own phases were open around it: a command in a phase is at depth 1


class TimedPhase:
    """Times one step into ``phases``, the one way every phase is timed: ``with TimedPhase(...) as phase:``.

    The step fails if its block raises; ``phase.outcome = "failed"`` marks one that failed without raising (a command
    whose result says so). ``started`` gives a step that began before its record existed (adopting a parked
    instance); ``end`` closes a step timed without a block. The phase is appended once, when the step ends.
    """

    def __init__(
        self,
        phases: list[PhaseTiming],
        name: str,
        clock: Clock,
        instance_id: int | None = None,
        *,
        kind: str = "provision",
        test: str | None = None,
        depth: int = 0,
        started: float | None = None,
    ) -> None:
        self.phases = phases
        self.name = name
        self.clock = clock
        self.instance_id = instance_id
        self.kind = kind
        self.test = test
        self.depth = depth
        self.started = clock.now() if started is None else started
        self.outcome = "passed"
        self.timing: PhaseTiming | None = None  # once ended

    def end(self, at: float | None = None) -> PhaseTiming:
        """Append the phase, ending ``at`` (now by default); a second call returns the first one's."""
        if self.timing is None:
            ended = self.clock.now() if at is None else at
            self.timing = PhaseTiming(
                self.name,
                self.started,
                ended - self.started,
                self.outcome,
                self.instance_id,
                self.kind,
                test=self.test,
                depth=self.depth,
            )
            self.phases.append(self.timing)
        return self.timing

    def __enter__(self) -> TimedPhase:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.outcome = "failed"
        self.end()


@dataclass
class Hold:
    """One test's use of an instance, so a shared instance's cost can be apportioned by the time each test held it."""

    nodeid: str
    started: float
    ended: float | None = None
    waited: float = 0.0  # seconds the test spent in acquire (provisioning, when it was the first to ask)

    def close(self, now: float) -> None:
        if self.ended is None:
            self.ended = now

    def as_dict(self) -> dict[str, Any]:
        """The hold as the JSON report and pytest-xdist's ``workeroutput`` carry it."""
        return {"nodeid": self.nodeid, "started": self.started, "ended": self.ended, "waited": self.waited}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hold:
        return cls(data["nodeid"], data["started"], data["ended"], data["waited"])


def _overlap(a: float, b: float, c: float, d: float) -> float:
    """The length of [a, b] within [c, d]. Comparisons, not min()/max(): a report calls this twice per test."""
    low = a if a > c else c
    high = b if b < d else d
    return high - low if high > low else 0.0


@dataclass
class InstanceRecord:
    """One instance's life as this session saw it; times are seconds on the session's clock."""

    instance_id: int
    label: str
    offer: Offer
    disk_gb: float
    search_started_at: float
    created_at: float
    running_at: float | None = None
    ready_at: float | None = None
    destroyed_at: float | None = None  # when the API confirmed it gone
    billing_ended_at: float | None = None  # when the API accepted the destroy: Vast bills nothing after it
    ssh_address: tuple[str, int] | None = None
    timeline: list[StatusChange] = field(default_factory=list)
    phases: list[PhaseTiming] = field(default_factory=list)
    failure: str | None = None
    holds: list[Hold] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # nvidia-smi and disk lines, for the report
    # --dumont-reuse: parked at the end of this session (clock seconds; epoch seconds of its deadline), or adopted
    # from a parked one, whose time parked before this session is billed here as its own line.
    parked_at: float | None = None
    parked_until: float | None = None
    parked_before_s: float = 0.0
    parked_before_usd: float = 0.0
    # When the GPU part is billed: [start, end) spans, the last one open (None) while it runs. Empty until the
    # first stop: then ``running_at`` starts the one span, open to the end (also a record read from an older report).
    gpu_spans: list[list[float | None]] = field(default_factory=list)
    # Interruptible: the bid in $/h, which Vast bills for the GPU instead of the offer's on-demand dph_base.
    bid: float | None = None
    stop_asked: bool = False  # a stop this session asked for (the factory's): not a preemption
    # The rates, fixed when the instance is created: every test's report prices its time with them.
    dph_base: float = field(init=False, repr=False)
    storage_dph: float = field(init=False, repr=False)
    dph_total: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dph_base = self.offer.dph_base if self.bid is None else self.bid
        self.storage_dph = self.offer.storage_dph(self.disk_gb)
        self.dph_total = self.dph_base + self.storage_dph

    @property
    def tests(self) -> list[str]:
        """The tests that held this instance, in the order they were handed it (one per hold)."""
        return [hold.nodeid for hold in self.holds]

    @property
    def live(self) -> bool:
        """Still this session's to destroy: neither destroyed nor parked for the next session."""
        return self.destroyed_at is None and self.parked_at is None

    def end(self, now: float) -> float:
        """The end of billing: the accepted destroy, else the confirmed one (a record read from an older report),
        else the parking (``--dumont-reuse``: the next session bills from there), else ``now`` (still live)."""
        if self.billing_ended_at is not None:
            return self.billing_ended_at
        if self.destroyed_at is not None:
            return self.destroyed_at
        return self.parked_at if self.parked_at is not None else now

    def running_spans(self, now: float) -> list[tuple[float, float]]:
        """The closed spans during which the GPU part was billed, an open one ending at the end (destroy or now)."""
        end = self.end(now)
        if not self.gpu_spans:
            return [(self.running_at, end)] if self.running_at is not None and self.running_at < end else []
        spans = []
        for start, stop in self.gpu_spans:
            assert start is not None
            high = end if stop is None or stop > end else stop
            if high > start:
                spans.append((start, high))
        return spans

    def gpu_started(self, at: float) -> None:
        """GPU billing (re)starts at ``at``: the instance was seen running after a status that is not."""
        if self.running_at is None:
            self.running_at = at  # the first span is implicit (no list) until a stop closes it
        elif self.gpu_spans and self.gpu_spans[-1][1] is not None:
            self.gpu_spans.append([at, None])

    def gpu_stopped(self, at: float) -> None:
        """GPU billing stops at ``at``: a stop or a reboot asked for, or a status seen that is not running."""
        if self.running_at is not None and not self.gpu_spans:
            self.gpu_spans.append([self.running_at, None])
        if self.gpu_spans and self.gpu_spans[-1][1] is None:
            start = self.gpu_spans[-1][0]
            assert start is not None
            self.gpu_spans[-1][1] = at if at > start else start

    def note_status(self, change: StatusChange) -> bool:
        """Keep a status change in the timeline (``at`` in seconds since the create); False for a repeat."""
        if self.timeline and self.timeline[-1].status == change.status:
            return False
        self.timeline.append(change)
        return True

    def running_seconds(self, now: float) -> float:
        return sum(b - a for a, b in self.running_spans(now))

    def exists_seconds(self, now: float) -> float:
        return max(0.0, self.end(now) - self.created_at)

    def wall_seconds(self, now: float) -> float:
        """From the start of the offer search to the confirmed destroy: all the time the rental took."""
        end = self.destroyed_at if self.destroyed_at is not None else self.end(now)
        return max(0.0, end - self.search_started_at)

    def gpu_cost(self, now: float) -> float:
        return self.dph_base * self.running_seconds(now) / 3600.0

    def storage_cost(self, now: float) -> float:
        return self.storage_dph * self.exists_seconds(now) / 3600.0

    def billed_cost(self, now: float) -> float:
        """GPU while running plus storage while existing (bandwidth is not known here), plus any time parked before."""
        return self.gpu_cost(now) + self.storage_cost(now) + self.parked_before_usd

    def simple_cost(self, now: float) -> float:
        """The offer's hourly price times the wall time, plus any time parked before this session."""
        return self.dph_total * self.wall_seconds(now) / 3600.0 + self.parked_before_usd

    def interval_cost(self, start: float, stop: float, now: float) -> float:
        """The billed estimate of [start, stop]: GPU where it overlaps running, storage where it overlaps existing."""
        end = self.end(now)
        if not self.gpu_spans:  # the usual case, one span from running to the end: no list is built
            gpu = _overlap(start, stop, self.running_at, end) if self.running_at is not None else 0.0
        else:
            gpu = sum(_overlap(start, stop, a, b) for a, b in self.running_spans(now))
        return (self.dph_base * gpu + self.storage_dph * _overlap(start, stop, self.created_at, end)) / 3600.0

    def hand_over(self, nodeid: str, at: float, *, waited: float = 0.0) -> Hold:
        """``nodeid`` holds this instance from ``at`` (its cost is apportioned by holds) until the hold is closed."""
        hold = Hold(nodeid, at, waited=waited)
        self.holds.append(hold)
        return hold

    def phase_seconds(self, name: str) -> float:
        return sum(p.duration for p in self.phases if p.name == name)

    def provisioning_seconds(self) -> float:
        return sum(self.phase_seconds(name) for name in PROVISIONING_PHASES)


class Ledger:
    """Every instance the session created, live or destroyed. Thread-safe: signal handlers and atexit read it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[InstanceRecord] = []

    def add(self, record: InstanceRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[InstanceRecord]:
        with self._lock:
            return list(self._records)

    def live(self) -> list[InstanceRecord]:
        return [r for r in self.records() if r.live]

    def billed_cost(self, now: float) -> float:
        return sum(r.billed_cost(now) for r in self.records())

    def simple_cost(self, now: float) -> float:
        return sum(r.simple_cost(now) for r in self.records())
