"""The idle watcher of auto-hibernation: sample GPU utilisation with ``nvidia-smi`` until it stays under a threshold for
a whole window, then snapshot and destroy (by default: GPU under 5% for 3 minutes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_dumont.clock import Clock, SystemClock
from pytest_dumont.errors import IdleTimeout as IdleTimeout
from pytest_dumont.errors import SSHCommandError
from pytest_dumont.scenarios.snapshot import Manifest, SnapshotStore, snapshot

UTILIZATION_QUERY = "nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits"


@dataclass(frozen=True)
class IdleVerdict:
    """The GPU went idle: when the idle stretch began, when the window was complete, and every sample taken."""

    idle_since: float
    decided_at: float
    samples: tuple[tuple[float, float], ...]

    @property
    def idle_seconds(self) -> float:
        return self.decided_at - self.idle_since


@dataclass
class IdleWatcher:
    """Samples the busiest GPU's utilisation every ``sample_every_s``; idle: under ``threshold`` % for ``window_s``."""

    connection: Any
    threshold: float = 5.0
    window_s: float = 180.0
    sample_every_s: float = 10.0
    clock: Clock = field(default_factory=SystemClock)
    samples: list[tuple[float, float]] = field(default_factory=list)

    def sample(self) -> float:
        """One reading: the highest ``utilization.gpu`` over the instance's GPUs, in %."""
        result = self.connection.run(UTILIZATION_QUERY, hide=True, warn=True)
        if not result.ok:
            raise SSHCommandError(UTILIZATION_QUERY, result.exited, result.stderr)
        values = [float(v) for v in result.stdout.split() if v.strip()]
        if not values:
            raise SSHCommandError(UTILIZATION_QUERY, 0, f"no utilization in {result.stdout!r}")
        reading = max(values)
        self.samples.append((self.clock.now(), reading))
        return reading

    def wait_until_idle(self, timeout_s: float, on_sample: Callable[[float, float], None] | None = None) -> IdleVerdict:
        """Sample until the GPU has been under the threshold for a whole window; a busy sample starts it again."""
        deadline = self.clock.now() + timeout_s
        idle_since: float | None = None
        while True:
            reading = self.sample()
            now = self.samples[-1][0]
            if on_sample is not None:
                on_sample(now, reading)
            if reading >= self.threshold:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            if idle_since is not None and now - idle_since >= self.window_s:
                return IdleVerdict(idle_since, now, tuple(self.samples))
            if now >= deadline:
                raise IdleTimeout(
                    f"the GPU did not stay under {self.threshold:g}% for {self.window_s:g} s within {timeout_s:g} s "
                    f"(last reading {reading:g}%)"
                )
            self.clock.sleep(min(self.sample_every_s, max(0.0, deadline - now)))


def hibernate(
    connection: Any, paths: Sequence[str], store: SnapshotStore, destroy: Callable[[], None], *, key: str
) -> Manifest:
    """Snapshot ``paths`` into ``store``, then ``destroy`` the instance (only once the snapshot is whole)."""
    manifest = snapshot(connection, paths, store, key=key)
    destroy()
    return manifest
