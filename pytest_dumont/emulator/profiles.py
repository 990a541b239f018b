"""Boot schedules: how long an emulated instance takes to go null -> loading -> running -> SSH up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BootProfile:
    """Delays (seconds) of each boot step, each counted from the previous one; ``None`` waits for ``advance``."""

    name: str
    to_loading: float | None  # create -> actual_status "loading"
    to_running: float | None  # "loading" -> "running" (also used after start and reboot)
    to_ssh: float | None  # "running" -> SSH server accepting connections

    @property
    def manual(self) -> bool:
        return self.to_loading is None


# Small but nonzero: clients must really observe null and loading before running.
FAST = BootProfile("fast", to_loading=0.05, to_running=0.15, to_ssh=0.05)
# The seed run: loading at 21 s, running at 73 s after create, SSH 12.4 s after running.
SEED = BootProfile("seed", to_loading=21.0, to_running=52.0, to_ssh=12.4)
MANUAL = BootProfile("manual", to_loading=None, to_running=None, to_ssh=None)

PROFILES: dict[str, BootProfile] = {p.name: p for p in (FAST, SEED, MANUAL)}


@dataclass(frozen=True)
class Schedule:
    """A profile with its time factor: ``seed`` at 0.1 boots ten times faster than the seed did."""

    profile: BootProfile
    time_factor: float = 1.0

    def __post_init__(self) -> None:
        if not self.time_factor > 0:
            raise ValueError(f"time_factor must be > 0, got {self.time_factor!r}")

    def delay(self, step: str) -> float | None:
        """Real seconds before ``step`` ("to_loading", "to_running" or "to_ssh"), or ``None`` when manual."""
        base: float | None = getattr(self.profile, step)
        return None if base is None else base * self.time_factor

    def to_dict(self) -> dict[str, object]:
        return {"profile": self.profile.name, "time_factor": self.time_factor}


def schedule(profile: str | BootProfile = "fast", time_factor: float = 1.0) -> Schedule:
    """Resolve a profile name (``fast``, ``seed``, ``manual``) into a ``Schedule``; unknown names raise."""
    if isinstance(profile, BootProfile):
        return Schedule(profile, float(time_factor))
    try:
        found = PROFILES[profile]
    except KeyError:
        names = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown boot profile {profile!r}; choose one of: {names}") from None
    return Schedule(found, float(time_factor))
