"""The session's paid resources (the API endpoint and the instance pool) as context managers.

The fixtures open them on first use; prewarming and the xdist controller open them earlier, outside any test, and
hand the same objects to the fixtures. Either way one ``with`` owns each and every path ends in its teardown. The
pool's provisioner is built complete here (``build_provisioner``), from the settings and the session's parts.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dumont.cassettes import cassette_session
from pytest_dumont.errors import TeardownError
from pytest_dumont.provisioning.pool import InstancePool
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest, ReadyInstance
from pytest_dumont.session.state import SessionState, get_state

if TYPE_CHECKING:
    from pytest_dumont.cassettes.session import CassetteSession
    from pytest_dumont.provisioning.contracts import InstanceWatcher, StatusListener
    from pytest_dumont.safety.arming import Backstops
    from pytest_dumont.session.settings import Settings
    from pytest_dumont.ssh.keys import SessionKey
    from pytest_dumont.vast.client import VastClient


@dataclass(frozen=True, repr=False)
class ApiEndpoint:
    """Where the session's Vast.ai API calls go, and with which key."""

    url: str
    api_key: str | None
    emulated: bool

    def __repr__(self) -> str:
        return f"ApiEndpoint(url={self.url!r}, emulated={self.emulated})"


WORKERINPUT_KEY = "dumont_shared"  # what an xdist controller in shared mode hands each worker


def is_xdist_controller(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller (it schedules tests and runs none)."""
    return not hasattr(config, "workerinput") and config.pluginmanager.has_plugin("dsession")


def worker_api(config: pytest.Config) -> ApiEndpoint | None:
    """On a shared-mode xdist worker: the controller's API (its emulator, if it started one)."""
    data = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if data is None:
        return None
    return ApiEndpoint(data["api_url"], data["api_key"], emulated=data["emulated"])


@contextmanager
def open_api(config: pytest.Config) -> Iterator[ApiEndpoint]:
    """The real API, an emulator at an explicit URL, or the bundled emulator started (and stopped) here."""
    shared = worker_api(config)  # an xdist worker in shared mode uses its controller's API
    if shared is not None:
        yield shared
        return
    settings = get_state(config).settings
    # Replay answers from cassettes: it never needs the key, so it never holds it.
    key = settings.api_key.reveal() if settings.api_key and settings.mode != "replay" else None
    if settings.mode != "emulator" or settings.api_url_explicit:
        yield ApiEndpoint(settings.api_url, key, emulated=settings.mode == "emulator")
        return
    from pytest_dumont.emulator import Emulator  # only emulator mode pays for it

    emulator = Emulator(profile=settings.emulator_profile, time_factor=settings.emulator_time_factor)
    emulator.start()
    try:
        yield ApiEndpoint(emulator.url, emulator.api_key, emulated=True)
    finally:
        emulator.stop()


def deadlines(settings: Settings) -> Deadlines:
    return Deadlines(boot=settings.boot_timeout, ssh=settings.ssh_timeout, poll_max=settings.poll_max)


def api_client(settings: Settings, api: ApiEndpoint, cassettes: CassetteSession | None) -> VastClient:
    """The session's client: through the cassette when one records or replays; retried up to
    ``--dumont-api-retry-seconds``, except on replay, whose policy waits on the virtual clock."""
    from pytest_dumont.vast.client import VastClient
    from pytest_dumont.vast.retry import DEFAULT_POLICY

    options: dict[str, Any] = cassettes.client_options() if cassettes else {}
    if settings.mode != "replay":
        options["policy"] = replace(
            options.get("policy", DEFAULT_POLICY),
            total_seconds=settings.api_retry_s,
            teardown_seconds=settings.teardown_retry_s,
        )
    return VastClient(api.url, api.api_key, **options)


def build_provisioner(
    settings: Settings,
    state: SessionState,
    client: VastClient,
    key: SessionKey,
    known_hosts: Path,
    backstops: Backstops,
    *,
    watchers: list[InstanceWatcher],
    on_status: StatusListener | None,
    cassettes: CassetteSession | None,
) -> Provisioner:
    """The session's provisioner, complete: nothing is set on it afterwards, so nothing changes while it rents."""
    make = cassettes.make_provisioner if cassettes else Provisioner
    return make(
        client,
        clock=state.clock,
        ledger=state.ledger,
        session_id=state.session_id,
        ssh_key=key,
        known_hosts=known_hosts,
        deadlines=deadlines(settings),
        offer_attempts=settings.offer_attempts,
        on_status=on_status,
        watchers=[*backstops.watchers, *watchers],
        budget=backstops.budget,
        failed_machines=backstops.failed_machines,
        deadman=backstops.deadman,
    )


class BootStatus:
    """The live status line of a boot, shown once a test waits for the pool (``show``): a prewarmed boot runs while
    other tests do, and writing past their output capture would break it."""

    def __init__(self, line: StatusListener | None) -> None:
        self._line = line
        self._shown = threading.Event()

    def show(self) -> None:
        self._shown.set()

    def __call__(self, instance_id: int, status: str, elapsed: float) -> None:
        if self._line is not None and self._shown.is_set():
            self._line(instance_id, status, elapsed)


BOOT_STATUS_KEY = pytest.StashKey[BootStatus]()


def show_boot_status(config: pytest.Config) -> None:
    """From now on, a boot's status is shown (the ``dumont_pool`` fixture calls it as it hands the pool out)."""
    status = config.stash.get(BOOT_STATUS_KEY, None)
    if status is not None:
        status.show()


@contextmanager
def open_pool(config: pytest.Config, api: ApiEndpoint) -> Iterator[InstancePool]:
    """A pool armed with every backstop; on exit every instance it rented is destroyed, whatever happened."""
    from pytest_dumont.reporting.status_line import StatusLine
    from pytest_dumont.safety.arming import arm as arm_safety
    from pytest_dumont.safety.arming import backstops as make_backstops
    from pytest_dumont.safety.signals import SignalGuard
    from pytest_dumont.ssh.keys import SessionKey

    state = get_state(config)
    settings = state.settings
    private_dir = Path(tempfile.mkdtemp(prefix=f"dumont-{state.session_id}-"))  # 0700, removed at the end
    cassettes = cassette_session(config)  # replayed or recorded provisioning goes through its cassette
    client = api_client(settings, api, cassettes)
    key = SessionKey.generate(private_dir / "key", comment=f"dumont-{state.session_id}")
    made = make_backstops(config, deadlines(settings), api.url, api.api_key, key)  # budget, switch, ledger, watchdog
    if BOOT_STATUS_KEY not in config.stash:
        config.stash[BOOT_STATUS_KEY] = BootStatus(StatusLine.for_config(config))
    provisioner = build_provisioner(
        settings,
        state,
        client,
        key,
        private_dir / "known_hosts",
        made,
        watchers=[instance_events(config)],
        on_status=config.stash[BOOT_STATUS_KEY],
        cassettes=cassettes,
    )
    pool = InstancePool(provisioner)
    safety = arm_safety(config, pool, made, api.url)  # the meter, the renewer, the sweep, parking
    parking = safety.parking  # --dumont-reuse: parks what the session finished with cleanly
    guard = SignalGuard(cleanup=lambda: close_pool(pool, state, park=parking.park_if_clean if parking else None))
    # The SSH stack is imported before a signal can become a KeyboardInterrupt: one raised inside ``import fabric``
    # leaves half-imported modules behind, and pytest then fails while reporting the interrupt.
    import pytest_dumont.ssh.connect  # noqa: F401

    guard.arm()
    try:
        yield pool
    finally:
        try:
            if safety.renewer is not None:  # everything is destroyed (or parked) next: a renewal would race it
                safety.renewer.stop()
            if parking is not None:
                parking.session_ending()  # the normal way out: not from atexit, where nothing is parked
            guard.run_cleanup()
        finally:
            safety.close()
            guard.disarm()
            client.close()
            key.remove()
            shutil.rmtree(private_dir, ignore_errors=True)


def instance_events(config: pytest.Config) -> InstanceWatcher:
    """Users' ``pytest_dumont_instance_*`` hooks (and the webhook) hear of each instance as it is created and ends."""
    from pytest_dumont.reporting.notify import LiveEvents
    from pytest_dumont.reporting.run import get_run

    state = get_state(config)
    return LiveEvents(get_run(config).hooks, state.ledger.records, lambda: state.clock.now())


def close_pool(
    pool: InstancePool, state: SessionState, park: Callable[[ProvisionRequest, ReadyInstance], bool] | None = None
) -> None:
    """Destroy the pool's instances (or park them, given ``park``), noting a failure for the terminal summary."""
    try:
        pool.close(park)
    except TeardownError as exc:
        state.teardown_errors.append(exc.message)
        raise


@contextmanager
def open_session(config: pytest.Config) -> Iterator[tuple[ApiEndpoint, InstancePool]]:
    """The API and the pool together, torn down in reverse order (pool first, then the emulator if started)."""
    with ExitStack() as stack:
        api = stack.enter_context(open_api(config))
        yield api, stack.enter_context(open_pool(config, api))
