"""The session's paid resources (the API endpoint and the instance pool) as context managers.

The fixtures open them on first use; prewarming and the xdist controller open them earlier, outside any test, and
hand the same objects to the fixtures. Either way one ``with`` owns each and every path ends in its teardown.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_dumont.cassettes import cassette_session
from pytest_dumont.errors import TeardownError
from pytest_dumont.provisioning.pool import InstancePool
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest, ReadyInstance
from pytest_dumont.session.state import SessionState, get_state


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


@contextmanager
def open_pool(config: pytest.Config, api: ApiEndpoint) -> Iterator[InstancePool]:
    """A pool armed with every backstop; on exit every instance it rented is destroyed, whatever happened."""
    from pytest_dumont.safety.arming import arm as arm_safety
    from pytest_dumont.safety.signals import SignalGuard
    from pytest_dumont.ssh.keys import SessionKey
    from pytest_dumont.vast.client import VastClient

    state = get_state(config)
    settings = state.settings
    private_dir = Path(tempfile.mkdtemp(prefix=f"dumont-{state.session_id}-"))  # 0700, removed at the end
    cassettes = cassette_session(config)  # replayed or recorded provisioning goes through its cassette
    client = VastClient(api.url, api.api_key, **(cassettes.client_options() if cassettes else {}))
    key = SessionKey.generate(private_dir / "key", comment=f"dumont-{state.session_id}")
    make_provisioner = cassettes.make_provisioner if cassettes else Provisioner
    provisioner = make_provisioner(
        client,
        clock=state.clock,
        ledger=state.ledger,
        session_id=state.session_id,
        ssh_key=key,
        known_hosts=private_dir / "known_hosts",
        deadlines=Deadlines(boot=settings.boot_timeout, ssh=settings.ssh_timeout, poll_max=settings.poll_max),
        offer_attempts=settings.offer_attempts,
    )
    pool = InstancePool(provisioner)
    safety = arm_safety(config, pool, api.url, api.api_key)  # ledger, watchdog, budget
    announce_instances(config, provisioner)
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


def announce_instances(config: pytest.Config, provisioner: Provisioner) -> None:
    """Users' ``pytest_dumont_instance_*`` hooks (and the webhook) hear of each instance as it is created and ends."""
    from pytest_dumont.reporting.notify import LiveEvents
    from pytest_dumont.reporting.run import get_run

    state = get_state(config)
    provisioner.watchers.append(LiveEvents(get_run(config).hooks, state.ledger.records, lambda: state.clock.now()))


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
