"""Prewarming: when GPU tests are collected, the instance boots in the background while the other tests run.

Provisioning is the slowest step of a GPU suite (minutes on Vast), and nothing in it needs the tests. So at the end
of collection the session's pool is opened (in the main thread: it arms signal handlers) and the request most GPU
tests ask for is provisioned on a thread, which also reads the instance's GPU and disk facts once SSH answers. The
first GPU test joins that thread and waits only for what is left; an error on the thread is raised there. If no GPU
test runs after all, the pool's teardown destroys whatever was rented, waiting for a provisioning still in flight (the
pool's lock) so nothing is left behind.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from contextlib import ExitStack, suppress

import pytest

from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.cancellation import Cancellation
from pytest_dumont.provisioning.pool import InstancePool
from pytest_dumont.provisioning.provisioner import ProvisionRequest, ReadyInstance
from pytest_dumont.session.markers import provision_request, uses_shared_instance
from pytest_dumont.session.resources import ApiEndpoint, is_xdist_controller, open_session, worker_api
from pytest_dumont.session.state import SESSION_KEY, get_state


class BackgroundProvisioning:
    """Provisions one request on a thread, outside the pool's lock, and stops it at once when the session ends.

    Cancelling stops that provisioning call alone (its waits end, its next create is refused), so every way out goes
    through the lifecycle's destroy; what finishes after a cancel is destroyed, never handed to a pool that may be
    closed already. A thread stuck in a slow API call is waited for ``timeout`` seconds only: the pool's close then
    destroys what the ledger and the session label show, on the provisioner's own clock, and the thread cleans up
    after itself.
    """

    def __init__(
        self,
        pool: InstancePool,
        request: ProvisionRequest,
        name: str,
        on_done: Callable[[ReadyInstance | None, BaseException | None], None] | None = None,
    ) -> None:
        self.pool = pool
        self.request = request
        self.error: BaseException | None = None
        self.cancellation = Cancellation()
        self._on_done = on_done
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self.cancellation.cancelled

    def _run(self) -> None:
        provisioner = self.pool.provisioner
        try:
            ready = self.pool.rent(self.request, cancel=self.cancellation)  # adopts a parked instance first
        except BaseException as exc:  # kept for whoever asks; the pool remembers a DumontError like acquire does
            self.error = exc
            if isinstance(exc, DumontError):
                self.pool.adopt(self.request, exc)
            self._done(None, exc)
            return
        if self.cancellation.cancelled:
            with suppress(DumontError):  # a failure is in the ledger as live: the pool's close tries again
                provisioner.destroy(ready.record, ready.connection)
            self._done(None, KeyboardInterrupt("cancelled"))
            return
        self.pool.adopt(self.request, ready)
        self._done(ready, None)

    def _done(self, ready: ReadyInstance | None, error: BaseException | None) -> None:
        if self._on_done is not None:
            self._on_done(ready, error)

    def join(self) -> None:
        self._thread.join()

    def cancel(self, timeout: float = 10.0, reason: str | None = None) -> None:
        self.cancellation.cancel(reason)
        self._thread.join(timeout)


class Prewarm:
    """The session's resources opened at collection end, and the thread provisioning the most asked request."""

    def __init__(self, stack: ExitStack, api: ApiEndpoint, pool: InstancePool, request: ProvisionRequest) -> None:
        self.api = api
        self.pool = pool
        self.request = request
        self.background = BackgroundProvisioning(pool, request, "dumont-prewarm", self._provisioned)
        self._stack = stack
        self._lock = threading.Lock()
        self._reported = False

    def _provisioned(self, ready: ReadyInstance | None, error: BaseException | None) -> None:
        """On the thread, once SSH answers: read the GPU and disk facts there, not in the first GPU test."""
        if ready is not None and not self.background.cancelled:
            from pytest_dumont.provisioning.timing import gather_facts

            gather_facts(ready.connection, ready.record)  # never raises; the first test finds them read

    def join(self, request: ProvisionRequest) -> None:
        """Wait for the background provisioning if ``request`` is what it rents; raise its error once."""
        if request != self.request:
            return
        self.background.join()
        with self._lock:
            error, reported = self.background.error, self._reported
            self._reported = True
        if error is not None and not reported:
            raise error

    def close(self) -> None:
        """Cancel a provisioning still in flight (it destroys what it made), destroy everything, stop the API."""
        with self._lock:
            stack, self._stack = self._stack, ExitStack()
        self.background.cancel()
        stack.close()

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        # Before the reports are written (plugin.py's tryfirst sessionfinish), so they show the instance destroyed.
        with suppress(DumontError):  # a teardown failure is in the state's teardown_errors, shown in the summary
            self.close()
        return (yield)


PREWARM_KEY = pytest.StashKey[Prewarm]()


def prewarmed(config: pytest.Config) -> Prewarm | None:
    return config.stash.get(PREWARM_KEY, None)


def will_run_gpu(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """The collected tests that use the shared instance, not skipped outright (``-k``/``-m`` already applied).

    Tests that rent their own instances (``dumont_instance_factory``) do not count: a prewarmed instance would idle.
    """
    return [item for item in items if uses_shared_instance(item) and not item.get_closest_marker("skip")]


def _per_worker_reuse(config: pytest.Config) -> bool:
    """A per-worker xdist worker with ``--dumont-reuse`` does not prewarm: it collects every test but cannot know
    whether xdist will send it a GPU one, so its prewarm could adopt the parked instance that the worker running the
    GPU tests then misses (renting another), or park one no test used. Its first GPU test adopts (or rents) instead.
    """
    if not hasattr(config, "workerinput") or get_state(config).settings.reuse_min <= 0:
        return False
    from pytest_dumont.safety.arming import reuse_refusal

    return reuse_refusal(config) is None


def start(session: pytest.Session) -> Prewarm | None:
    """Start provisioning in the background if this process will run GPU tests against an API."""
    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    if state is None or not state.settings.prewarm or state.settings.uses_cassettes:
        return None  # replay never touches the network; recording keeps each test's provisioning in its cassette
    if is_xdist_controller(config) or worker_api(config) is not None:
        return None  # the xdist controller runs no test; a shared-mode worker uses the controller's instance
    if _per_worker_reuse(config):
        return None
    items = will_run_gpu(session.items)
    if not items:
        return None
    counts = Counter(provision_request(item, state.settings) for item in items)
    request = counts.most_common(1)[0][0]
    stack = ExitStack()
    try:
        api, pool = stack.enter_context(open_session(config))
    except Exception:
        stack.close()
        return None  # the first GPU test opens the pool itself and reports the same trouble there
    warm = Prewarm(stack, api, pool, request)
    config.stash[PREWARM_KEY] = warm
    config.pluginmanager.register(warm, "dumont-prewarm")
    warm.background.start()
    # The SSH stack (fabric, paramiko) is needed once the instance runs. Imported here, while the thread searches and
    # creates, its time is not spent on the thread between the create and the first status poll, where it would
    # shift every later poll (by up to half a second while CPU-bound tests hold the GIL).
    import pytest_dumont.ssh.connect  # noqa: F401

    return warm
