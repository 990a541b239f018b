"""The fixtures users see. Two tiers: ``dumont_pool`` (session) pays for instances; ``vast_gpu`` (function) hands one
out. Everything heavy (fabric, the emulator) is imported inside the fixtures that need it, so a suite with no GPU
test pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING

import pytest

from pytest_dumont.cassettes import cassette_session
from pytest_dumont.session.markers import provision_request
from pytest_dumont.session.settings import Settings
from pytest_dumont.session.state import get_state

if TYPE_CHECKING:
    import fabric

    from pytest_dumont.provisioning.factory import InstanceFactory
    from pytest_dumont.provisioning.pool import InstancePool
    from pytest_dumont.provisioning.provisioner import ReadyInstance
    from pytest_dumont.session.resources import ApiEndpoint


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
    from pytest_dumont.session import prewarm  # imported when a GPU test needs it
    from pytest_dumont.session.resources import open_api

    warm = prewarm.prewarmed(pytestconfig)
    if warm is not None:  # opened at collection end; closed with the pool
        yield warm.api
        return
    with open_api(pytestconfig) as api:
        yield api


@pytest.fixture(scope="session")
def dumont_pool(pytestconfig: pytest.Config, dumont_api: ApiEndpoint) -> Iterator[InstancePool]:
    """Rents the session's instances on first use and destroys every one of them at the end, whatever happened."""
    from pytest_dumont.session import prewarm
    from pytest_dumont.session.resources import open_pool, show_boot_status

    warm = prewarm.prewarmed(pytestconfig)
    if warm is None:
        with open_pool(pytestconfig, dumont_api) as pool:
            show_boot_status(pytestconfig)  # a test waits for this pool's boots: their status line is shown
            yield pool
        return
    show_boot_status(pytestconfig)  # from here the prewarmed boot's status line is shown, a test waits for it
    try:
        yield warm.pool
    finally:
        warm.close()


@pytest.fixture
def vast_gpu(request: pytest.FixtureRequest, dumont_settings: Settings) -> Iterator[ReadyInstance]:
    """A running Vast.ai instance with SSH up (RTX 4090 by default), shared by the session's tests that ask alike.

    Has ``id``, ``offer``, ``gpu_name``, ``dph_total``, ``ssh_host``/``ssh_port``, ``timeline`` (status changes)
    and ``phases`` (timings). Destroyed at the end of the session, whatever the tests did.
    """
    from pytest_dumont.session import prewarm, xdist

    cassettes = cassette_session(request.config)
    if dumont_settings.mode == "replay" and (cassettes is None or not cassettes.has_cassette(request.node)):
        pytest.skip(cassettes.skip_reason(request.node) if cassettes else replay_skip_reason(request.node.nodeid))
    clock = get_state(request.config).clock
    wanted = provision_request(request.node, dumont_settings)
    asked = clock.now()
    instance = xdist.worker_instance(request.config, wanted)  # xdist shared mode: the controller's instance
    pool: InstancePool | None = None  # the controller's instance is its to check and destroy
    if instance is None:
        pool = request.getfixturevalue("dumont_pool")
        asked = clock.now()
        warm = prewarm.prewarmed(request.config)
        if warm is not None:
            warm.join(wanted)  # only what is left of the boot; a background failure is raised here
        instance = pool.acquire(wanted)
    instance.emulated = instance.emulated or dumont_settings.mode == "emulator"
    if cassettes is not None:
        cassettes.attach(request, instance)  # this test's SSH transcript, replayed or recorded
    # The test holds the instance from hand-over to its teardown: the report apportions the cost by these holds.
    # It waited for provisioning if its ask started the search, or (prewarmed) for what was left of it.
    ready_at = instance.record.ready_at if instance.record.ready_at is not None else clock.now()
    waited = clock.now() - asked if instance.record.search_started_at >= asked else max(0.0, ready_at - asked)
    hold = instance.record.hand_over(request.node.nodeid, clock.now(), waited=waited)
    if instance.record.bid is not None and pool is not None:  # interruptible: Vast may take it during the test
        from pytest_dumont.provisioning.preemption import check_held
        from pytest_dumont.session import held

        provisioner, record, when = pool.provisioner, instance.record, f"while {request.node.nodeid} held it"
        held.watch(request.node, lambda: check_held(provisioner, record, when))
    try:
        yield instance
    finally:
        hold.close(clock.now())
    if instance.record.bid is not None:
        from pytest_dumont.session import held

        held.after_test(request.node)


@pytest.fixture
def ssh_session(request: pytest.FixtureRequest, vast_gpu: ReadyInstance) -> fabric.Connection:
    """A connected fabric ``Connection`` to ``vast_gpu`` as root (TCP_NODELAY set, session key, no ~/.ssh).

    Each ``run``/``sudo``/``put``/``get`` is timed into the report; the GPU and disk facts are read once.
    """
    from pytest_dumont.provisioning.timing import gather_facts, time_commands

    gather_facts(vast_gpu.connection, vast_gpu.record)
    return time_commands(vast_gpu.connection, vast_gpu.record, get_state(request.config).clock)


@pytest.fixture
def dumont_instance_factory(request: pytest.FixtureRequest, dumont_settings: Settings) -> Iterator[InstanceFactory]:
    """Fresh instances of the test's own, never shared (failover needs two at once); destroyed when the test ends.

    ``factory()`` rents one (the test's ``dumont_offer`` request), ``factory.stop(i)`` pauses it,
    ``factory.destroy(i)`` destroys it now, ``with factory.phase(i, "restore"):`` times a step into the report.
    """
    from pytest_dumont.provisioning.factory import InstanceFactory as Factory

    cassettes = cassette_session(request.config)
    if dumont_settings.mode == "replay" and (cassettes is None or not cassettes.has_cassette(request.node)):
        pytest.skip(cassettes.skip_reason(request.node) if cassettes else replay_skip_reason(request.node.nodeid))
    pool: InstancePool = request.getfixturevalue("dumont_pool")
    api: ApiEndpoint = request.getfixturevalue("dumont_api")
    request_ = provision_request(request.node, dumont_settings)
    with ExitStack() as stack:
        rent = stack.enter_context(cassettes.rentals(request.node)) if cassettes is not None else None
        if rent is None and cassettes is not None and cassettes.provisioner is not None:
            rent = cassettes.provisioner.provision_unrecorded  # this run records other tests, not this one
        factory = Factory(
            pool, request_, get_state(request.config).clock, request.node.nodeid, rent=rent, emulated=api.emulated
        )
        from pytest_dumont.session import held

        held.watch(request.node, factory.preempted)  # an interruptible one may be taken during the test
        try:
            yield factory
        finally:
            factory.close()


@pytest.fixture
def dumont_phase(request: pytest.FixtureRequest) -> Callable[[str], AbstractContextManager[None]]:
    """Time a step of your own: ``with dumont_phase("create file"): ...`` adds it to the report's phase table; the
    commands and phases inside it are nested under it."""
    from pytest_dumont.provisioning.timing import user_phase

    state = get_state(request.config)

    def phase(name: str) -> AbstractContextManager[None]:
        record = request.getfixturevalue("vast_gpu").record if "vast_gpu" in request.fixturenames else None
        return user_phase(record, name, state.clock)

    return phase
