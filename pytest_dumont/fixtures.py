"""The fixtures users see. Two tiers: ``dumont_pool`` (session) pays for instances; ``vast_gpu`` (function) hands one
out. Everything heavy (fabric, the emulator) is imported inside the fixtures that need it, so a suite with no GPU
test pays nothing for it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_dumont.cassettes import cassette_session
from pytest_dumont.errors import TeardownError
from pytest_dumont.ledger import Hold
from pytest_dumont.lifecycle import Deadlines, Provisioner, ReadyInstance
from pytest_dumont.markers import provision_request
from pytest_dumont.models import PhaseTiming
from pytest_dumont.pool import InstancePool
from pytest_dumont.session import SessionState, get_state
from pytest_dumont.settings import Settings

if TYPE_CHECKING:
    import fabric


@dataclass(frozen=True, repr=False)
class ApiEndpoint:
    """Where the session's Vast.ai API calls go, and with which key."""

    url: str
    api_key: str | None
    emulated: bool

    def __repr__(self) -> str:
        return f"ApiEndpoint(url={self.url!r}, emulated={self.emulated})"


def replay_skip_reason(nodeid: str) -> str:
    """Why an unrecorded GPU test is skipped on replay, with the commands that record it."""
    return (
        f"no cassette for {nodeid}: run it live with `VAST_API_KEY=... pytest -m real_gpu {nodeid}`, "
        f"or against the bundled emulator with `pytest --dumont-mode=emulator {nodeid}`"
    )


@pytest.fixture(scope="session")
def dumont_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's resolved pytest-dumont settings (options, ini, environment)."""
    return get_state(pytestconfig).settings


@pytest.fixture(scope="session")
def dumont_api(pytestconfig: pytest.Config) -> Iterator[ApiEndpoint]:
    """The Vast.ai API of this session: the real one, or the bundled emulator started for the session."""
    state = get_state(pytestconfig)
    settings = state.settings
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


@pytest.fixture(scope="session")
def dumont_pool(pytestconfig: pytest.Config, dumont_api: ApiEndpoint) -> Iterator[InstancePool]:
    """Rents the session's instances on first use and destroys every one of them at the end, whatever happened."""
    from pytest_dumont.backstops import SignalGuard
    from pytest_dumont.safety import arm as arm_safety
    from pytest_dumont.sshkeys import SessionKey
    from pytest_dumont.vast.client import VastClient

    state = get_state(pytestconfig)
    settings = state.settings
    private_dir = Path(tempfile.mkdtemp(prefix=f"dumont-{state.session_id}-"))  # 0700, removed at the end
    cassettes = cassette_session(pytestconfig)  # replayed or recorded provisioning goes through its cassette
    client = VastClient(dumont_api.url, dumont_api.api_key, **(cassettes.client_options() if cassettes else {}))
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
    safety = arm_safety(pytestconfig, pool, dumont_api.url, dumont_api.api_key)  # ledger, watchdog, budget
    guard = SignalGuard(cleanup=lambda: _close_pool(pool, state))
    guard.arm()
    try:
        yield pool
    finally:
        try:
            guard.run_cleanup()
        finally:
            safety.close()
            guard.disarm()
            client.close()
            key.remove()
            shutil.rmtree(private_dir, ignore_errors=True)


def _close_pool(pool: InstancePool, state: SessionState) -> None:
    try:
        pool.close()
    except TeardownError as exc:
        state.teardown_errors.append(exc.message)
        raise


@pytest.fixture
def vast_gpu(request: pytest.FixtureRequest, dumont_settings: Settings) -> Iterator[ReadyInstance]:
    """A running Vast.ai instance with SSH up (RTX 4090 by default), shared by the session's tests that ask alike.

    Has ``id``, ``offer``, ``gpu_name``, ``dph_total``, ``ssh_host``/``ssh_port``, ``timeline`` (status changes)
    and ``phases`` (timings). Destroyed at the end of the session, whatever the tests did.
    """
    cassettes = cassette_session(request.config)
    if dumont_settings.mode == "replay" and (cassettes is None or not cassettes.has_cassette(request.node)):
        pytest.skip(cassettes.skip_reason(request.node) if cassettes else replay_skip_reason(request.node.nodeid))
    pool: InstancePool = request.getfixturevalue("dumont_pool")
    clock = get_state(request.config).clock
    asked = clock.now()
    instance = pool.acquire(provision_request(request.node, dumont_settings))
    instance.record.tests.append(request.node.nodeid)
    if cassettes is not None:
        cassettes.attach(request, instance)  # this test's SSH transcript, replayed or recorded
    # The test holds the instance from hand-over to its teardown: the report apportions the cost by these holds.
    # It waited for provisioning only if its ask started the search (a shared instance's later tests did not wait).
    waited = clock.now() - asked if instance.record.search_started_at >= asked else 0.0
    hold = Hold(request.node.nodeid, clock.now(), waited=waited)
    instance.record.holds.append(hold)
    try:
        yield instance
    finally:
        hold.close(clock.now())


@pytest.fixture
def ssh_session(request: pytest.FixtureRequest, vast_gpu: ReadyInstance) -> fabric.Connection:
    """A connected fabric ``Connection`` to ``vast_gpu`` as root (TCP_NODELAY set, session key, no ~/.ssh).

    Each ``run``/``sudo``/``put``/``get`` is timed into the report; the GPU and disk facts are read once.
    """
    from pytest_dumont.timing import gather_facts, time_commands

    gather_facts(vast_gpu.connection, vast_gpu.record)
    return time_commands(vast_gpu.connection, vast_gpu.record, get_state(request.config).clock)


@pytest.fixture
def dumont_phase(request: pytest.FixtureRequest) -> Callable[[str], AbstractContextManager[None]]:
    """Time a step of your own: ``with dumont_phase("create file"): ...`` adds it to the report's phase table."""
    state = get_state(request.config)

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        record = None
        if "vast_gpu" in request.fixturenames:
            record = request.getfixturevalue("vast_gpu").record
        started = state.clock.now()
        outcome = "failed"
        try:
            yield
            outcome = "passed"
        finally:
            timing = PhaseTiming(
                name, started, state.clock.now() - started, outcome, record.instance_id if record else None, kind="user"
            )
            if record is not None:
                record.phases.append(timing)

    return phase
