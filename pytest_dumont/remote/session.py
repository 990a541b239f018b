"""``--dumont-remote``: the session rents instances, syncs the tree, sets up, and pytest-xdist runs the tests there.

The runner is pytest-xdist's controller: it collects nothing and runs nothing; its workers are processes on the
instances (``--dumont-remote-instances``, one gateway each, ``--dumont-remote-workers`` per instance), reached
through execnet's SSH gateway (``--tx ssh=...``), so every report is an ordinary pytest report.

- ``pytest_cmdline_main`` (after xdist's): placeholder ``--tx`` and ``--dist load``, so xdist's own configure
  registers its distributed session.
- configure: refusals first (cassette replay, no ``ssh`` client, no pytest-xdist, a tree over the cap: nothing is
  rented), then the session's pool is opened and each instance provisioned on a thread of its own while pytest
  starts; one that fails cancels the others.
- ``pytest_sessionstart`` (before xdist's, which starts the workers): wait for the instances, sync, set up (each step
  on every instance at once, both timed as phases of each instance), write the session's ssh config (one host per
  instance), hand xdist the real ``--tx`` specs and the workers' arguments (test paths remapped into the synced
  tree, controller-only options out). Any instance failing a step ends the run, naming it.
- while tests run: each test's numbers (time on its instance, cost) ride on its report; a test past
  ``--dumont-max-minutes`` has its instance destroyed, which ends the workers and the run; a worker that went down
  because its instance can no longer be reached ends the run with an error naming the instance. With
  ``--dumont-keep-on-failure``, the instance of a failed test (or setup) is kept, as ``vast_gpu`` keeps one.
- the end: the instances are destroyed at ``pytest_sessionfinish`` (before the reports are written) and, whatever
  happened before (an error at start-up, Ctrl-C, SIGTERM), by the config's cleanup; the pool's backstops (ledger
  file, watchdog, dead-man switch, budget) are armed as for any rental.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Generator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.provisioner import ProvisionRequest, ReadyInstance
from pytest_dumont.provisioning.records import TimedPhase
from pytest_dumont.remote import environment, gateway, sync, tree
from pytest_dumont.reporting import PROPERTY
from pytest_dumont.safety.budget import GUARD_KEY, keep_after_failure
from pytest_dumont.session.prewarm import BackgroundProvisioning
from pytest_dumont.session.resources import open_session
from pytest_dumont.session.settings import OPTIONS, Settings
from pytest_dumont.session.state import SessionState

REMOTE_KEY = pytest.StashKey["RemoteRun"]()
PLACEHOLDER_TX = "popen"  # replaced at sessionstart, once the instance's address is known
REMOTE_BASE = "dumont-remote"  # under the login directory on the instance
STOPPED = pytest.ExitCode.INTERRUPTED  # the run stopped before or while the tests ran on the instance


def requested(config: pytest.Config, settings: Settings) -> bool:
    """Remote mode, on the runner (never on one of its workers)."""
    return settings.remote and not hasattr(config, "workerinput")


def prepare_xdist(config: pytest.Config, settings: Settings) -> None:
    """Before xdist's configure: make it a distributed session (the real specs come at sessionstart)."""
    config.option.tx = [PLACEHOLDER_TX]
    if getattr(config.option, "maxworkerrestart", None) is None:  # xdist's default for -n N; unbounded with --tx
        config.option.maxworkerrestart = str(4 * settings.remote_workers * settings.remote_instances)
    config.option.numprocesses = None  # -n would start local workers; --dumont-remote-workers says how many remote
    if getattr(config.option, "dist", "no") == "no":
        config.option.dist = "load"


def configure(config: pytest.Config, state: SessionState) -> RemoteRun:
    """Refuse what cannot work, before anything is rented; then start renting while pytest starts up."""
    settings = state.settings
    if settings.uses_cassettes:
        raise pytest.UsageError(
            "--dumont-remote runs the tests on a rented instance, which a cassette cannot replay: use "
            "--dumont-mode=emulator (the bundled emulator, no key, no money) or --dumont-mode=live / -m real_gpu "
            "(real instances, needs VAST_API_KEY); or drop --dumont-remote to replay the GPU tests here"
        )
    if not hasattr(config.option, "tx") or config.getoption("collectonly"):
        raise pytest.UsageError(
            "--dumont-remote runs the tests through pytest-xdist, which is not active: pip install pytest-xdist "
            "(and do not pass -p no:xdist or --collect-only)"
        )
    if config.getoption("usepdb", False):
        raise pytest.UsageError("--pdb cannot reach tests that run on the instance: drop --pdb or --dumont-remote")
    try:
        gateway.require_ssh_client()
        root = config.rootpath
        pytest_cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider: every file is hashed
        cache = pytest_cache.mkdir("dumont-remote") / "hashes.json" if pytest_cache is not None else None
        manifest = tree.build_manifest(root, tree.list_tree(root), settings.remote_max_mb, tree.HashCache(cache))
    except (gateway.NoSSHClient, tree.TreeTooLarge) as exc:
        raise pytest.UsageError(str(exc)) from None
    run = RemoteRun(config, state, root, manifest)
    config.stash[REMOTE_KEY] = run
    config.add_cleanup(run.close)  # runs even when sessionstart fails or is interrupted (then sessionfinish does not)
    config.pluginmanager.register(run, "dumont-remote")
    run.start()
    # What each report needs (about 0.1 s of imports on a busy machine): now, while the instances boot, rather than
    # on the controller's main thread at the first report.
    import pytest_dumont.reporting.html
    import pytest_dumont.reporting.per_test
    import pytest_dumont.reporting.run  # noqa: F401

    return run


class RemoteRun:
    """The runner's side of a remote session: its instances, their trees and environments, their workers."""

    def __init__(self, config: pytest.Config, state: SessionState, root: Path, manifest: dict[str, Any]) -> None:
        self.config = config
        self.state = state
        self.settings = state.settings
        self.root = root
        self.manifest = manifest
        self.request = ProvisionRequest(filters=self.settings.filters, image=self.settings.image)
        self.directory = Path(tempfile.mkdtemp(prefix="dumont-remote-"))  # 0700: the ssh config lives here
        self.instances: list[ReadyInstance] = []  # by id, the order of their ssh config hosts
        self.remote_dir = ""  # the synced tree, the same path on every instance
        self.setups: list[environment.SetupResult] = []
        self.synced: list[sync.SyncResult] = []
        self.stopped_by: str | None = None  # why the session destroyed an instance while tests ran
        self.started: dict[str, float] = {}  # running tests: nodeid -> when the controller heard it start
        self.running_on: dict[str, ReadyInstance] = {}  # running tests: nodeid -> its instance, once a report said
        self._hosts: dict[str, ReadyInstance] = {}  # ssh config host alias -> instance
        self.ssh_config = self.directory / "ssh_config"
        self._masters: list[subprocess.Popen[bytes]] = []  # one SSH connection per instance, for its workers
        self.numbers: dict[str, dict[str, Any]] = {}  # a test's numbers, from its call report to its teardown's
        self._stack = ExitStack()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.api, self.pool = self._stack.enter_context(open_session(config))
        count = self.settings.remote_instances
        self._rented: list[ReadyInstance | None] = [None] * count
        self._rent_error: BaseException | None = None  # the first rental that failed (the others are cancelled)
        self.background = [
            BackgroundProvisioning(self.pool, self.request, f"dumont-remote-{i + 1}", self._on_rented(i))
            for i in range(count)
        ]
        self._deadlines = threading.Thread(target=self._watch_deadlines, name="dumont-remote-deadlines", daemon=True)

    def start(self) -> None:
        for background in self.background:
            background.start()

    def _on_rented(self, index: int) -> Callable[[ReadyInstance | None, BaseException | None], None]:
        def done(ready: ReadyInstance | None, error: BaseException | None) -> None:
            self._rented[index] = ready
            if error is None or isinstance(error, KeyboardInterrupt):
                return
            with self._lock:
                first = self._rent_error is None
                if first:
                    self._rent_error = error
            if first:  # the run cannot start: the others stop renting (their instances are destroyed)
                for background in self.background:
                    background.cancellation.cancel("another instance of the remote run could not be rented")

        return done

    def close(self) -> None:
        """Cancel provisionings in flight, destroy the instances, stop the API. Idempotent, from any path."""
        self._closed.set()
        with self._lock:
            stack, self._stack = self._stack, ExitStack()
        for background in self.background:
            background.cancellation.cancel()
        for background in self.background:
            background.cancel()
        masters, self._masters = self._masters, []
        for master in masters:
            gateway.stop_master(master)
        try:
            stack.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- start-up: rent, sync, set up, point xdist at the instance ---------------------------------------------

    def _write(self, line: str, **markup: bool) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, **markup)

    def _phase(self, ready: ReadyInstance, name: str) -> TimedPhase:
        """Time a step as a phase of the instance (kind ``remote``), shown in the report's phase table."""
        record = ready.record
        return TimedPhase(record.phases, name, self.state.clock, record.instance_id, kind="remote")

    def _stop(self, message: str) -> None:
        """End the run before its tests: destroy now (so the summary shows it destroyed), then exit with ``message``."""
        with suppress(DumontError):  # a failed destroy is in teardown_errors and the backstops keep trying
            self.close()
        pytest.exit(message, returncode=STOPPED)

    def _where(self, ready: ReadyInstance) -> str:
        return f"instance {ready.id} ({ready.gpu_name}, ${ready.dph_total:.4f}/h)"

    def _ended(self) -> str:
        """What became of the instances, for a message that ends the run."""
        kept = [r.id for r in self.instances if r.id in self.pool.provisioner.kept]
        gone = [str(r.id) for r in self.instances if r.id not in kept]
        if not kept:
            return (
                "the instance was destroyed" if len(gone) <= 1 else f"every instance ({', '.join(gone)}) was destroyed"
            )
        said = "; ".join(f"instance {i} was kept (--dumont-keep-on-failure: see its warning)" for i in kept)
        return said + (f"; the others ({', '.join(gone)}) were destroyed" if gone else "")

    def _each(self, step: Callable[[ReadyInstance], Any]) -> list[Any]:
        """``step`` on every instance, at once on threads when there are several; an ``Exception`` is its result."""
        results: list[Any] = [None] * len(self.instances)

        def run(index: int, ready: ReadyInstance) -> None:
            try:
                results[index] = step(ready)
            except Exception as exc:
                results[index] = exc

        if len(self.instances) == 1:
            run(0, self.instances[0])
            return results
        threads = [
            threading.Thread(target=run, args=(i, ready), name=f"dumont-remote-{i + 1}", daemon=True)
            for i, ready in enumerate(self.instances)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:  # Ctrl-C ends this wait; the config's cleanup destroys the instances under the threads
            thread.join()
        return results

    @pytest.hookimpl(tryfirst=True)  # before xdist's (trylast), which starts the workers
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        for background in self.background:
            background.join()
        self.instances = sorted((ready for ready in self._rented if ready is not None), key=lambda ready: ready.id)
        error = self._rent_error
        if error is None:
            error = next((b.error for b in self.background if b.error is not None), None)
            if isinstance(error, KeyboardInterrupt):
                raise error
        if error is not None:
            detail = error.message if isinstance(error, DumontError) else f"{type(error).__name__}: {error}"
            if len(self.background) > 1:
                detail += f" (renting {len(self.background)} instances; every one rented was destroyed)"
            self._stop(f"--dumont-remote: no instance to run the tests on: {detail}")
        assert len(self.instances) == len(self.background), "a rental ended without an instance or an error"
        self._sync()
        self._connect_workers()
        self._set_up()
        self._point_xdist()
        self._deadlines.start()

    def _sync(self) -> None:
        base = f"{REMOTE_BASE}/{self.root.name}"

        def sync_one(ready: ReadyInstance) -> sync.SyncResult:
            with self._phase(ready, "remote sync"):
                return sync.sync_tree(ready.connection, self.root, self.manifest, base)

        results = self._each(sync_one)
        for ready, result in zip(self.instances, results, strict=True):
            if isinstance(result, (sync.SyncError, OSError)):
                self._stop(f"--dumont-remote: the sync to {self._where(ready)} failed: {result}; {self._ended()}")
            if isinstance(result, Exception):
                raise result
        self.synced = results
        directories = {result.remote_dir for result in results}
        if len(directories) > 1:  # the workers share one command line, whose test paths point into the tree
            where = ", ".join(
                f"{r.remote_dir} on instance {i.id}" for i, r in zip(self.instances, results, strict=True)
            )
            self._stop(
                f"--dumont-remote: the instances' login directories differ ({where}): the workers share one "
                f"command line, so the tree must be at one path. Use one image for every instance; {self._ended()}"
            )
        self.remote_dir = results[0].remote_dir
        for ready, result in zip(self.instances, results, strict=True):
            self._write(
                f"dumont remote: {self._where(ready)}: synced {result.files_sent} of {len(self.manifest)} files "
                f"({result.bytes_sent / 1e6:.1f} MB) to {self.remote_dir} in {result.seconds:.2f} s"
            )

    def _set_up(self) -> None:
        command = self.settings.remote_setup or environment.default_setup_command()
        timeout = self.settings.max_minutes * 60.0

        def set_up_one(ready: ReadyInstance) -> environment.SetupResult:
            with self._phase(ready, "remote setup"):
                return environment.run_setup(ready.connection, self.remote_dir, command, timeout=timeout)

        results = self._each(set_up_one)
        for result in results:
            if isinstance(result, Exception):
                raise result
        self.setups = results
        failed = [(ready, result) for ready, result in zip(self.instances, results, strict=True) if not result.ok]
        for ready, result in failed:
            self._write(
                f" remote setup failed on {self._where(ready)} (exit {result.exit_status}) ".center(79, "="), red=True
            )
            self._write(f"$ {command}")
            for line in result.output.splitlines():
                self._write(line)
        if failed:
            guard = self.config.stash.get(GUARD_KEY, None)
            if self.settings.keep_on_failure and guard is not None:
                for ready, _ in failed:
                    warning = keep_after_failure(
                        guard, ready, "the remote setup", f" The synced tree is {self.remote_dir}."
                    )
                    if warning is not None:  # now: a run stopped at its start has no terminal summary
                        guard.warnings.remove(warning)
                        self._write(f"DUMONT WARNING: {warning}", red=True, bold=True)
            which = "; ".join(f"{r.exit_status} on {self._where(ready)}" for ready, r in failed)
            self._stop(
                f"--dumont-remote: the setup command exited with {which} (its output is above); {self._ended()}. "
                "Fix the command (--dumont-remote-setup) or the project's install, and run again"
            )
        for ready, result in zip(self.instances, results, strict=True):
            on = f" on instance {ready.id}" if len(results) > 1 else ""
            self._write(f"dumont remote: setup done in {result.seconds:.1f} s{on}")

    def _connect_workers(self) -> None:
        """Write the ssh config, and open each instance's master connection while the setup runs."""
        key = self.pool.provisioner.ssh_key.private_path
        hosts = [(ready.target.host, ready.target.port) for ready in self.instances]
        gateway.write_ssh_config(self.ssh_config, hosts, key, self.pool.provisioner.known_hosts, self.directory)
        with self._lock:
            if self._closed.is_set():
                return
            for index in range(len(self.instances)):
                master = gateway.start_master(self.ssh_config, index)
                if master is not None:
                    self._masters.append(master)

    def _point_xdist(self) -> None:
        ssh_config = self.ssh_config
        python = environment.remote_python(self.remote_dir, self.settings.remote_python)
        specs: list[str] = []
        for index, ready in enumerate(self.instances):
            alias = gateway.host_alias(index)
            self._hosts[alias] = ready
            specs += gateway.tx_specs(ssh_config, python, self.remote_dir, self.settings.remote_workers, alias)
        self.config.option.tx = specs
        value_options = [spec.flag for spec in OPTIONS if not spec.switch]
        params = self.config.invocation_params
        try:
            args = gateway.worker_args(
                params.args,
                self.config.getoption("file_or_dir") or (),
                value_options,
                params.dir,
                self.root,
                self.remote_dir,
            )
        except gateway.OutsideRootdir as exc:
            self._stop(f"--dumont-remote: {exc}")
        # xdist hands the workers config.invocation_params.args: the remapped ones, on this controller only.
        self.config.invocation_params = dataclasses.replace(params, args=tuple(args))

    def _instance_of(self, node: object) -> ReadyInstance | None:
        """The instance a worker (an xdist ``WorkerController``) runs on, by its spec's ssh host."""
        spec = getattr(getattr(node, "gateway", None), "spec", None)
        found = self._hosts.get(getattr(spec, "ssh", None) or "")
        if found is None and len(self.instances) == 1:
            return self.instances[0]
        return found

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        # xdist would rsync its rsync roots (pytest itself) into the tree: the sync and the setup did the work.
        dsession = config.pluginmanager.get_plugin("dsession")
        nodemanager = getattr(dsession, "nodemanager", None)
        if nodemanager is not None:
            nodemanager.roots = []

    # --- while the tests run --------------------------------------------------------------------------------------

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self.started[nodeid] = self.state.clock.now()

    @pytest.hookimpl(tryfirst=True)  # before junitxml and pytest-html read the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ready = self._instance_of(getattr(report, "node", None))
        if report.when == "teardown":
            self.started.pop(report.nodeid, None)
            self.running_on.pop(report.nodeid, None)
            data = self.numbers.pop(report.nodeid, None)
            if data is not None:  # junitxml writes a test's properties from its teardown report
                report.user_properties.append((PROPERTY, data))
            return
        if ready is None:
            return
        self.running_on[report.nodeid] = ready
        if report.when == "setup" and report.passed:
            return  # a test's numbers ride on its call report, or on its setup report when it never got to call
        started = self.started.get(report.nodeid)
        if started is None:
            return
        from pytest_dumont.reporting import CELLS
        from pytest_dumont.reporting.html import row_cells
        from pytest_dumont.reporting.per_test import data_for_test
        from pytest_dumont.reporting.run import get_run

        now = self.state.clock.now()
        record = ready.record
        hold = record.hand_over(report.nodeid, started)
        hold.close(now)
        data = data_for_test(record, hold, now)
        report.user_properties.append((PROPERTY, data))
        self.numbers[report.nodeid] = data
        run = get_run(self.config)
        run.outcomes[report.nodeid] = report.outcome
        if run.html:
            setattr(report, CELLS, row_cells(data))
        if report.failed and self.settings.keep_on_failure:
            self._keep(ready, report.nodeid)

    def _keep(self, ready: ReadyInstance, nodeid: str) -> None:
        guard = self.config.stash.get(GUARD_KEY, None)
        if guard is not None:
            detail = f" The synced tree is {self.remote_dir}, its interpreter {self._python()}."
            keep_after_failure(guard, ready, nodeid, detail)

    def _python(self) -> str:
        return environment.remote_python(self.remote_dir, self.settings.remote_python)

    def _watch_deadlines(self) -> None:
        """Destroy the instance when a test has run past --dumont-max-minutes: its worker, and the run, end."""
        limit = self.settings.max_minutes * 60.0
        while not self._closed.wait(0.5):
            now = self.state.clock.now()
            late = [nodeid for nodeid, started in list(self.started.items()) if now - started > limit]
            if late and self.instances and self.stopped_by is None:
                ready = self.running_on.get(late[0])
                where = [ready] if ready is not None else self.instances  # its instance unknown: all of them
                ids = ", ".join(str(r.id) for r in where)
                what = "the instance was" if len(where) == 1 else "every instance was"
                self.stopped_by = (
                    f"{late[0]} ran past --dumont-max-minutes={self.settings.max_minutes:g} on instance "
                    f"{ids}: {what} destroyed, which stopped the run"
                )
                for instance in where:
                    with suppress(DumontError):  # not confirmed: the session's end tries again, then the backstops
                        self.pool.evict(instance)
                return

    @pytest.hookimpl(tryfirst=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        output = getattr(node, "workeroutput", None)
        if isinstance(output, dict):
            # pytest-html's pytest-metadata reads what its worker half sends, and the instance may not have it.
            output.setdefault("metadata", {})
        if error is None or not self.instances:
            return
        if self.stopped_by is not None:
            pytest.exit(self.stopped_by, returncode=STOPPED)
        ready = self._instance_of(node)
        if ready is not None and not _answers(ready):
            running = [n for n in sorted(self.started) if self.running_on.get(n, ready) is ready]
            self._stop(
                f"--dumont-remote: lost the connection to instance {ready.id} ({ready.label}) while the "
                f"tests ran there (tests running then: {', '.join(running) or 'none'}); {self._ended()}"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            return (yield)
        except DumontError as exc:  # the spend meter stopped the session at its budget
            raise session.Interrupted(exc.message) from None

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        # Every worker is down. Destroy before plugin.py's sessionfinish writes the reports.
        with suppress(DumontError):  # a teardown failure is in the state's teardown_errors, shown in the summary
            self.close()
        return (yield)

    def pytest_report_header(self, config: pytest.Config) -> str:
        workers, count = self.settings.remote_workers, self.settings.remote_instances
        where = "the instance" if count == 1 else f"each of {count} instances"
        return f"dumont remote: {len(self.manifest)} files to sync, {workers} worker(s) on {where}"


def _answers(ready: ReadyInstance, timeout: float = 15.0) -> bool:
    """Whether the instance still runs a command over the session's own SSH connection."""
    from pytest_dumont.ssh.streams import LiveStream

    try:
        with LiveStream(ready.connection, "true") as stream:
            stream.channel.settimeout(timeout)
            status, _ = stream.finish()
            return status == 0
    except Exception:
        return False
