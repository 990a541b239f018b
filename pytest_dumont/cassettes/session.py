"""The session's cassettes: which tests have one, the provisioner that plays or records, each test's transcript,
and the pytest hooks around a replayed or recorded test (network blocked, the test's own HTTP on vcrpy).

Light to import on purpose: a replay run whose GPU tests have no cassette only asks ``has_cassette`` and skips.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dumont import __version__
from pytest_dumont.cassettes.format import FORMAT, CassetteError, dump, load, write_atomic
from pytest_dumont.cassettes.paths import cassette_root, http_path, record_commands, rental_path, ssh_path
from pytest_dumont.clock import Clock
from pytest_dumont.session.settings import Settings

if TYPE_CHECKING:
    from pytest_dumont.cassettes.http import CassetteAdapter, HttpTape
    from pytest_dumont.cassettes.provisioning import CassetteProvisioner, ProvisioningCassette
    from pytest_dumont.cassettes.ssh import Transcript
    from pytest_dumont.provisioning.provisioner import Provisioner, ProvisionRequest, ReadyInstance
    from pytest_dumont.secrets.scrub import Scrubber
    from pytest_dumont.vast.client import VastClient


BESIDE_THE_MODULE = "cassettes"  # replay also looks in <test module's folder>/cassettes (pytest-recording's place)


@dataclass
class RecordedTest:
    """What one test writes: its SSH operations on a shared instance, the cassettes of the instances it rented
    itself, and its other calls through the provisioning client. Written only once every cassette it names is.
    """

    path: Path
    nodeid: str
    transcript: Transcript | None = None
    provisioning: ProvisioningCassette | None = None
    rentals: list[ProvisioningCassette] = field(default_factory=list)
    tape: HttpTape | None = None

    @property
    def complete(self) -> bool:
        return (self.provisioning is None or self.provisioning.saved) and all(r.saved for r in self.rentals)

    def document(self, root: Path) -> dict[str, Any]:
        document: dict[str, Any] = {"dumont_format": FORMAT, "kind": "ssh", "test": self.nodeid}
        if self.provisioning is not None:
            document["provisioning"] = self.provisioning.path.relative_to(root).as_posix()
        if self.rentals:
            document["rentals"] = [r.path.relative_to(root).as_posix() for r in self.rentals]
        document["operations"] = self.transcript.operations if self.transcript is not None else []
        if self.tape is not None and self.tape.recorded:
            document["interactions"] = self.tape.recorded
        return document


class CassetteSession:
    """Everything cassette-related for one pytest session; registered as a plugin for its hooks."""

    def __init__(self, settings: Settings, rootdir: Path, clock: Clock) -> None:
        self.settings = settings
        self.root = cassette_root(rootdir, settings.cassette_dir)
        self.roots = [self.root]  # and, on replay, each folder beside a test module that held a test's cassette
        self.replaying = settings.mode == "replay"
        self.clock = clock
        self.provisioner: CassetteProvisioner | None = None
        self.replayed: list[str] = []
        self.replayed_from: list[Path] = []  # the roots replayed tests' cassettes came from
        self.pending: dict[str, RecordedTest] = {}
        self.written: list[Path] = []
        self._recording_http: dict[str, Path] = {}
        self._scrubber: Scrubber | None = None

    # --- which tests ---------------------------------------------------------------------------------------------

    def root_for(self, item: pytest.Item) -> Path:
        """Where ``item``'s cassettes are: the cassette directory, or on replay the folder beside its module.

        The second lets a library ship recordings with its tests (``pytest --pyargs pytest_dumont.scenarios``).
        """
        if not self.replaying or ssh_path(self.root, item).exists():
            return self.root
        beside = Path(str(item.path)).parent / BESIDE_THE_MODULE
        if ssh_path(beside, item).exists():
            if beside not in self.roots:
                self.roots.append(beside)
            return beside
        return self.root

    def has_cassette(self, item: pytest.Item) -> bool:
        return ssh_path(self.root_for(item), item).exists()

    def skip_reason(self, item: pytest.Item) -> str:
        relative = ssh_path(self.root, item)
        return f"no cassette for {item.nodeid} ({relative}): record it with {record_commands(item.nodeid)}"

    def records(self, item: pytest.Item) -> bool:
        return not self.replaying and (self.settings.record_mode == "rewrite" or not self.has_cassette(item))

    @property
    def scrubber(self) -> Scrubber:
        if self._scrubber is None:
            from pytest_dumont.secrets.scrub import Scrubber

            self._scrubber = Scrubber(self.settings.secret_pattern)
        return self._scrubber

    # --- provisioning --------------------------------------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """``VastClient`` arguments: a requests session through the cassette adapter; no real sleeps on replay."""
        import requests

        from pytest_dumont.cassettes.http import CassetteAdapter
        from pytest_dumont.vast.retry import RetryPolicy

        self.adapter: CassetteAdapter = CassetteAdapter(self.clock, replaying=self.replaying)
        session = requests.Session()
        session.trust_env = not self.replaying  # replay reaches no proxy: skip the proxy and netrc look-ups per call
        session.mount("http://", self.adapter)
        session.mount("https://", self.adapter)
        options: dict[str, Any] = {"session": session}
        if self.replaying:
            options["policy"] = RetryPolicy(sleep=self.clock.sleep, clock=self.clock.now)
        return options

    def make_provisioner(self, client: VastClient, **kwargs: Any) -> Provisioner:
        from pytest_dumont.cassettes.provisioning import CassetteProvisioner

        self.provisioner = CassetteProvisioner(
            client,
            adapter=self.adapter,
            roots=self.roots,
            scrubber=self.scrubber,
            replaying=self.replaying,
            recorded_with={
                "mode": self.settings.mode,
                "emulator_profile": self.settings.emulator_profile if self.settings.mode == "emulator" else None,
                "pytest_dumont": __version__,
                "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            how_to_record="the command in the skip reason of its tests (--dumont-record-mode=rewrite)",
            **kwargs,
        )
        return self.provisioner

    # --- one test ------------------------------------------------------------------------------------------------

    def _test_document(self, item: pytest.Item) -> dict[str, Any]:
        return load(ssh_path(self.root_for(item), item), "ssh", record_commands(item.nodeid))

    def _replaying(self, item: pytest.Item) -> None:
        if item.nodeid not in self.replayed:
            self.replayed.append(item.nodeid)
        root = self.root_for(item)
        if root not in self.replayed_from:
            self.replayed_from.append(root)

    def _recording(self, item: pytest.Item) -> RecordedTest:
        if item.nodeid not in self.pending:
            self.pending[item.nodeid] = RecordedTest(ssh_path(self.root, item), item.nodeid)
        return self.pending[item.nodeid]

    def attach(self, request: pytest.FixtureRequest, instance: ReadyInstance) -> None:
        """Point the shared connection at this test's transcript for the length of the test."""
        from pytest_dumont.cassettes.ssh import Transcript

        item = request.node
        if self.provisioner is None or instance.id not in self.provisioner.slots:
            return
        slot = self.provisioner.slots[instance.id]
        if self.replaying:
            path = ssh_path(self.root_for(item), item)
            slot.current = Transcript(path, list(self._test_document(item).get("operations") or []))
            self._replaying(item)
        elif self.records(item):
            recording = self._recording(item)
            slot.current = recording.transcript = Transcript(recording.path)
            recording.provisioning = self.provisioner.cassettes[instance.id]
        else:
            return

        def detach() -> None:
            slot.current = None

        request.addfinalizer(detach)

    @contextmanager
    def rentals(self, item: pytest.Item) -> Iterator[Callable[[ProvisionRequest], ReadyInstance] | None]:
        """For the length of a test that rents its own instances: how to rent one through its cassette.

        Each rental has a cassette of its own (``<test>.rental-N.yaml``); the test's other calls through the
        provisioning client (a stop, a status check) play on a tape of the test's own. None when this run neither
        replays nor records the test: the factory then rents live, as it would without cassettes.
        """
        from pytest_dumont.cassettes.http import HttpTape

        provisioner = self.provisioner
        if provisioner is None or not (self.replaying or self.records(item)):
            yield None
            return
        root = self.root_for(item)
        how = record_commands(item.nodeid)
        if self.replaying:
            document = self._test_document(item)
            tape = HttpTape(ssh_path(root, item), self.scrubber, list(document.get("interactions") or []))
            recorded = len(document.get("rentals") or [])
            self._replaying(item)
        else:
            recording = self._recording(item)
            tape = recording.tape = HttpTape(recording.path, self.scrubber)
            recorded = 0
        count = 0

        def rent(request: ProvisionRequest) -> ReadyInstance:
            nonlocal count
            count += 1
            path = rental_path(root, item, count)
            if self.replaying and count > recorded:
                raise CassetteError(
                    f"{item.nodeid} rents instance {count} but its cassette {ssh_path(root, item)} recorded "
                    f"{recorded}: the test changed since it was recorded; record it again with {how}"
                )
            ready = provisioner.provision(request, path)
            if not self.replaying:
                recording.rentals.append(provisioner.cassettes[ready.id])
            return ready

        previous, provisioner.adapter.tape = provisioner.adapter.tape, tape
        try:
            yield rent
        finally:
            provisioner.adapter.tape = previous

    def flush(self) -> None:
        """Write each recorded test whose instances' cassettes were all saved: never a half-recorded set."""
        for recording in self.pending.values():
            if not recording.complete:
                continue
            write_atomic(recording.path, dump(recording.document(self.root)))
            stem = glob.escape(recording.path.name.removesuffix(".ssh.yaml"))  # test ids hold [brackets]
            stale = recording.path.parent.glob(stem + ".rental-*.yaml")
            for path in set(stale) - {r.path for r in recording.rentals}:
                path.unlink()  # an earlier recording rented more
            self.written += [recording.path] + [r.path for r in recording.rentals]
            if recording.provisioning is not None:
                self.written.append(recording.provisioning.path)
        self.pending.clear()

    # --- hooks ---------------------------------------------------------------------------------------------------

    def _is_gpu(self, item: pytest.Item) -> bool:
        return item.get_closest_marker("real_gpu") is not None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        if not (self.replaying and self._is_gpu(item) and self.has_cassette(item)):
            return (yield)
        from pytest_dumont.cassettes.network import block_network

        with block_network():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """The test body's own HTTP, if any, goes to ``<module>/<test>.yaml`` through vcrpy."""
        if not self._is_gpu(item):
            return (yield)
        path = http_path(self.root_for(item), item)
        if (self.replaying and not path.exists()) or not (self.replaying or self.records(item)):
            return (yield)
        from vcr.record_mode import RecordMode

        from pytest_dumont.cassettes.vcr_tests import vcr_for_tests

        with ExitStack() as stack:
            if self.replaying:
                stack.enter_context(vcr_for_tests(self.scrubber).use_cassette(str(path), record_mode=RecordMode.NONE))
            else:
                path.unlink(missing_ok=True)
                stack.enter_context(vcr_for_tests(self.scrubber).use_cassette(str(path), record_mode=RecordMode.ALL))
                self._recording_http[item.nodeid] = path
            return (yield)

    def pytest_sessionfinish(self) -> None:
        self.flush()
        self.written += [p for p in self._recording_http.values() if p.exists()]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.replayed:
            slept = getattr(self.clock, "slept", 0.0)
            where = ", ".join(map(str, self.replayed_from))
            terminalreporter.write_line(
                f"dumont: {len(self.replayed)} test(s) replayed from {where}; timings shown are the recorded ones "
                f"(virtual clock: {slept:.1f} s of recorded waiting replayed without waiting)"
            )
        if self.written:
            terminalreporter.write_line(
                f"dumont: wrote {len(set(self.written))} cassette file(s) under {self.root}, scrubbed of secrets"
            )
