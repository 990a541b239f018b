"""``--dumont-remote``: the session rents one instance, syncs the tree, sets up, and pytest-xdist runs the tests there.

The runner is pytest-xdist's controller: it collects nothing and runs nothing; its workers are processes on the
instance, reached through execnet's SSH gateway (``--tx ssh=...``), so every report is an ordinary pytest report.

- ``pytest_cmdline_main`` (after xdist's): placeholder ``--tx`` and ``--dist load``, so xdist's own configure
  registers its distributed session.
- configure: refusals first (cassette replay, no ``ssh`` client, no pytest-xdist, a tree over the cap: nothing is
  rented), then the session's pool is opened and the instance provisioned on a thread while pytest starts.
- ``pytest_sessionstart`` (before xdist's, which starts the workers): wait for the instance, sync, set up (both timed
  as phases of the instance), write the session's ssh config, hand xdist the real ``--tx`` specs and the workers'
  arguments (test paths remapped into the synced tree, controller-only options out).
- while tests run: each test's numbers (time on the instance, cost) ride on its report; a test past
  ``--dumont-max-minutes`` has its instance destroyed, which ends the workers and the run; a worker that went down
  because the instance can no longer be reached ends the run with an error naming the instance.
- the end: the instance is destroyed at ``pytest_sessionfinish`` (before the reports are written) and, whatever
  happened before (an error at start-up, Ctrl-C, SIGTERM), by the config's cleanup; the pool's backstops (ledger
  file, watchdog, dead-man switch, budget) are armed as for any rental.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Generator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.provisioner import ProvisionRequest, ReadyInstance
from pytest_dumont.provisioning.records import TimedPhase
from pytest_dumont.remote import environment, gateway, sync, tree
from pytest_dumont.reporting import PROPERTY
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
        config.option.maxworkerrestart = str(4 * settings.remote_workers)
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
    return run


class RemoteRun:
    """The runner's side of a remote session: one instance, its tree, its environment, its workers."""

    def __init__(self, config: pytest.Config, state: SessionState, root: Path, manifest: dict[str, Any]) -> None:
        self.config = config
        self.state = state
        self.settings = state.settings
        self.root = root
        self.manifest = manifest
        self.request = ProvisionRequest(filters=self.settings.filters, image=self.settings.image)
        self.directory = Path(tempfile.mkdtemp(prefix="dumont-remote-"))  # 0700: the ssh config lives here
        self.ready: ReadyInstance | None = None
        self.remote_dir = ""
        self.setup: environment.SetupResult | None = None
        self.synced: sync.SyncResult | None = None
        self.stopped_by: str | None = None  # why the session destroyed the instance while tests ran
        self.started: dict[str, float] = {}  # running tests: nodeid -> when the controller heard it start
        self.numbers: dict[str, dict[str, Any]] = {}  # a test's numbers, from its call report to its teardown's
        self._stack = ExitStack()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.api, self.pool = self._stack.enter_context(open_session(config))
        self.background = BackgroundProvisioning(self.pool, self.request, "dumont-remote")
        self._deadlines = threading.Thread(target=self._watch_deadlines, name="dumont-remote-deadlines", daemon=True)

    def start(self) -> None:
        self.background.start()

    def close(self) -> None:
        """Cancel a provisioning in flight, destroy the instance, stop the API. Idempotent, from any path."""
        self._closed.set()
        with self._lock:
            stack, self._stack = self._stack, ExitStack()
        self.background.cancel()
        try:
            stack.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- start-up: rent, sync, set up, point xdist at the instance ---------------------------------------------

    def _write(self, line: str, **markup: bool) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, **markup)

    def _phase(self, name: str) -> TimedPhase:
        """Time a step as a phase of the instance (kind ``remote``), shown in the report's phase table."""
        assert self.ready is not None
        record = self.ready.record
        return TimedPhase(record.phases, name, self.state.clock, record.instance_id, kind="remote")

    def _stop(self, message: str) -> None:
        """End the run before its tests: destroy now (so the summary shows it destroyed), then exit with ``message``."""
        with suppress(DumontError):  # a failed destroy is in teardown_errors and the backstops keep trying
            self.close()
        pytest.exit(message, returncode=STOPPED)

    @pytest.hookimpl(tryfirst=True)  # before xdist's (trylast), which starts the workers
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.background.join()
        error = self.background.error
        if error is not None:
            detail = error.message if isinstance(error, DumontError) else f"{type(error).__name__}: {error}"
            if isinstance(error, KeyboardInterrupt):
                raise error
            self._stop(f"--dumont-remote: no instance to run the tests on: {detail}")
        instances = self.pool.instances()
        assert instances, "the background provisioning ended without an instance or an error"
        self.ready = ready = instances[0]
        where = f"instance {ready.id} ({ready.gpu_name}, ${ready.dph_total:.4f}/h)"
        base = f"{REMOTE_BASE}/{self.root.name}"
        try:
            with self._phase("remote sync"):
                self.synced = sync.sync_tree(ready.connection, self.root, self.manifest, base)
        except (sync.SyncError, OSError) as exc:
            self._stop(f"--dumont-remote: the sync to {where} failed: {exc}; the instance was destroyed")
        assert self.synced is not None
        self.remote_dir = self.synced.remote_dir
        self._write(
            f"dumont remote: {where}: synced {self.synced.files_sent} of {len(self.manifest)} files "
            f"({self.synced.bytes_sent / 1e6:.1f} MB) to {self.remote_dir} in {self.synced.seconds:.2f} s"
        )
        command = self.settings.remote_setup or environment.default_setup_command()
        with self._phase("remote setup"):
            self.setup = environment.run_setup(
                ready.connection, self.remote_dir, command, timeout=self.settings.max_minutes * 60.0
            )
        if not self.setup.ok:
            self._write(f" remote setup failed on {where} (exit {self.setup.exit_status}) ".center(79, "="), red=True)
            self._write(f"$ {command}")
            for line in self.setup.output.splitlines():
                self._write(line)
            self._stop(
                f"--dumont-remote: the setup command exited with {self.setup.exit_status} on {where} (its output is "
                "above); the instance was destroyed. Fix the command (--dumont-remote-setup) or the project's "
                "install, and run again"
            )
        self._write(f"dumont remote: setup done in {self.setup.seconds:.1f} s")
        self._point_xdist(ready)
        self._deadlines.start()

    def _point_xdist(self, ready: ReadyInstance) -> None:
        key = self.pool.provisioner.ssh_key.private_path
        ssh_config = self.directory / "ssh_config"
        gateway.write_ssh_config(
            ssh_config, ready.target.host, ready.target.port, key, self.pool.provisioner.known_hosts
        )
        python = environment.remote_python(self.remote_dir, self.settings.remote_python)
        self.config.option.tx = gateway.tx_specs(ssh_config, python, self.remote_dir, self.settings.remote_workers)
        value_options = [spec.flag for spec in OPTIONS if not spec.switch] + ["--dumont-json"]
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
        ready = self.ready
        if report.when == "teardown":
            self.started.pop(report.nodeid, None)
            data = self.numbers.pop(report.nodeid, None)
            if data is not None:  # junitxml writes a test's properties from its teardown report
                report.user_properties.append((PROPERTY, data))
            return
        if ready is None or (report.when == "setup" and report.passed):
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

    def _watch_deadlines(self) -> None:
        """Destroy the instance when a test has run past --dumont-max-minutes: its worker, and the run, end."""
        limit = self.settings.max_minutes * 60.0
        while not self._closed.wait(0.5):
            now = self.state.clock.now()
            late = [nodeid for nodeid, started in list(self.started.items()) if now - started > limit]
            if late and self.ready is not None and self.stopped_by is None:
                self.stopped_by = (
                    f"{late[0]} ran past --dumont-max-minutes={self.settings.max_minutes:g} on instance "
                    f"{self.ready.id}: the instance was destroyed, which stopped the run"
                )
                with suppress(DumontError):  # not confirmed: the session's end tries again, then the backstops
                    self.pool.evict(self.ready)
                return

    @pytest.hookimpl(tryfirst=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        output = getattr(node, "workeroutput", None)
        if isinstance(output, dict):
            # pytest-html's pytest-metadata reads what its worker half sends, and the instance may not have it.
            output.setdefault("metadata", {})
        if error is None or self.ready is None:
            return
        if self.stopped_by is not None:
            pytest.exit(self.stopped_by, returncode=STOPPED)
        if not _answers(self.ready):
            running = ", ".join(sorted(self.started)) or "none"
            self._stop(
                f"--dumont-remote: lost the connection to instance {self.ready.id} ({self.ready.label}) while the "
                f"tests ran there (tests running then: {running}); the instance was destroyed"
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
        workers = self.settings.remote_workers
        return f"dumont remote: {len(self.manifest)} files to sync, {workers} worker(s) on the instance"


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
