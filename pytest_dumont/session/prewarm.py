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

from pytest_dumont.clock import Clock
from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.pool import InstancePool
from pytest_dumont.provisioning.provisioner import ProvisionRequest, ReadyInstance
from pytest_dumont.provisioning.records import InstanceRecord
from pytest_dumont.session.markers import provision_request, uses_shared_instance
from pytest_dumont.session.resources import ApiEndpoint, is_xdist_controller, open_session, worker_api
from pytest_dumont.session.state import SESSION_KEY
from pytest_dumont.vast.models import Offer


class CancellableClock:
    """A provisioner's clock while it rents on a thread: its next sleep ends in KeyboardInterrupt once cancelled.

    A session interrupted (Ctrl-C, SIGTERM) while an instance boots on a thread must not wait for the boot: the
    interrupt unwinds the provisioning through its ``except BaseException: destroy`` path. Only one sleep raises, so
    the destroy's own confirmation polls run normally.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cancelled = threading.Event()
        self.reason = "the session is ending"  # what the report says about the instance that was given up
        self._raised = False

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        if self._raised:
            self.clock.sleep(seconds)
        elif self.cancelled.wait(seconds):
            self._raised = True
            raise KeyboardInterrupt(f"{self.reason}: provisioning in the background was cancelled")


class BackgroundProvisioning:
    """Provisions one request on a thread, outside the pool's lock, and stops it at once when the session ends.

    Cancelling makes the provisioner's next sleep raise, and its watcher refuse a create (or keep a new instance),
    so every way out goes through the lifecycle's destroy; what finishes after a cancel is destroyed, never handed
    to a pool that may be closed already. A thread stuck in a slow API call is waited for ``timeout`` seconds only:
    the pool's close then destroys what the ledger and the session label show, and the thread cleans up after itself.
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
        self.clock = CancellableClock(pool.provisioner.clock)
        self._on_done = on_done
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        pool.provisioner.watchers.insert(0, self)  # first: a refused create tells no other watcher

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        provisioner = self.pool.provisioner
        original, provisioner.clock = provisioner.clock, self.clock
        try:
            ready = self.pool.rent(self.request)  # adopts a parked instance first (--dumont-reuse)
        except BaseException as exc:  # kept for whoever asks; the pool remembers a DumontError like acquire does
            self.error = exc
            if isinstance(exc, DumontError):
                self.pool.adopt(self.request, exc)
            self._done(None, exc)
            return
        finally:
            provisioner.clock = original
        if self.clock.cancelled.is_set():
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
        if reason is not None and not self.clock.cancelled.is_set():
            self.clock.reason = reason
        self.clock.cancelled.set()
        self._thread.join(timeout)

    # InstanceWatcher: refuse to go on once cancelled (only on this thread; other provisionings are not ours).
    def expecting(self, label: str, offer: Offer) -> None:
        self._refuse()

    def created(self, record: InstanceRecord) -> None:
        self._refuse()

    def ended(self, label: str, instance_id: int | None, outcome: str, note: str = "") -> None:
        return None

    def _refuse(self) -> None:
        if self.clock.cancelled.is_set() and threading.current_thread() is self._thread:
            raise KeyboardInterrupt(f"{self.clock.reason}: provisioning in the background was cancelled")


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
        if ready is not None and not self.background.clock.cancelled.is_set():
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


def start(session: pytest.Session) -> Prewarm | None:
    """Start provisioning in the background if this process will run GPU tests against an API."""
    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    if state is None or not state.settings.prewarm or state.settings.uses_cassettes:
        return None  # replay never touches the network; recording keeps each test's provisioning in its cassette
    if is_xdist_controller(config) or worker_api(config) is not None:
        return None  # the xdist controller runs no test; a shared-mode worker uses the controller's instance
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
