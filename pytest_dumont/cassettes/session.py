"""The session's cassettes: which tests have one, the provisioner that plays or records, each test's transcript,
and the pytest hooks around a replayed or recorded test (network blocked, the test's own HTTP on vcrpy).

Light to import on purpose: a replay run whose GPU tests have no cassette only asks ``has_cassette`` and skips.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dumont import __version__
from pytest_dumont.cassettes.format import FORMAT, dump, load, write_atomic
from pytest_dumont.cassettes.paths import cassette_root, http_path, record_commands, ssh_path
from pytest_dumont.clock import Clock
from pytest_dumont.settings import Settings

if TYPE_CHECKING:
    from pytest_dumont.cassettes.http import CassetteAdapter
    from pytest_dumont.cassettes.provisioning import CassetteProvisioner, ProvisioningCassette
    from pytest_dumont.cassettes.scrub import Scrubber
    from pytest_dumont.cassettes.ssh import Transcript
    from pytest_dumont.lifecycle import Provisioner, ReadyInstance
    from pytest_dumont.vast.client import VastClient


class CassetteSession:
    """Everything cassette-related for one pytest session; registered as a plugin for its hooks."""

    def __init__(self, settings: Settings, rootdir: Path, clock: Clock) -> None:
        self.settings = settings
        self.root = cassette_root(rootdir, settings.cassette_dir)
        self.replaying = settings.mode == "replay"
        self.clock = clock
        self.provisioner: CassetteProvisioner | None = None
        self.replayed: list[str] = []
        self.pending: list[tuple[Transcript, str, ProvisioningCassette]] = []
        self.written: list[Path] = []
        self._recording_http: dict[str, Path] = {}
        self._scrubber: Scrubber | None = None

    # --- which tests ---------------------------------------------------------------------------------------------

    def has_cassette(self, item: pytest.Item) -> bool:
        return ssh_path(self.root, item).exists()

    def skip_reason(self, item: pytest.Item) -> str:
        relative = ssh_path(self.root, item)
        return f"no cassette for {item.nodeid} ({relative}): record it with {record_commands(item.nodeid)}"

    def records(self, item: pytest.Item) -> bool:
        return not self.replaying and (self.settings.record_mode == "rewrite" or not self.has_cassette(item))

    @property
    def scrubber(self) -> Scrubber:
        if self._scrubber is None:
            from pytest_dumont.cassettes.scrub import Scrubber

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
            root=self.root,
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

    def attach(self, request: pytest.FixtureRequest, instance: ReadyInstance) -> None:
        """Point the shared connection at this test's transcript for the length of the test."""
        from pytest_dumont.cassettes.ssh import Transcript

        item = request.node
        if self.provisioner is None or instance.id not in self.provisioner.slots:
            return
        slot = self.provisioner.slots[instance.id]
        path = ssh_path(self.root, item)
        if self.replaying:
            doc = load(path, "ssh", record_commands(item.nodeid))
            slot.current = Transcript(path, list(doc.get("operations") or []))
            self.replayed.append(item.nodeid)
        elif self.records(item):
            slot.current = Transcript(path)
            self.pending.append((slot.current, item.nodeid, self.provisioner.cassettes[instance.id]))
        else:
            return

        def detach() -> None:
            slot.current = None

        request.addfinalizer(detach)

    def flush(self) -> None:
        """Write the transcripts of tests whose provisioning cassette was saved: never a half-recorded set."""
        for transcript, nodeid, provisioning in self.pending:
            if not provisioning.saved:
                continue
            document = {
                "dumont_format": FORMAT,
                "kind": "ssh",
                "test": nodeid,
                "provisioning": provisioning.path.relative_to(self.root).as_posix(),
                "operations": transcript.operations,
            }
            write_atomic(transcript.path, dump(document))
            self.written += [transcript.path, provisioning.path]
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
        path = http_path(self.root, item)
        if (
            not self._is_gpu(item)
            or (self.replaying and not path.exists())
            or not (self.replaying or self.records(item))
        ):
            return (yield)
        from vcr.record_mode import RecordMode

        from pytest_dumont.cassettes.vcr_tests import vcr_for_tests

        with ExitStack() as stack:
            if self.replaying:
                stack.enter_context(vcr_for_tests(self.scrubber).use_cassette(str(path), record_mode=RecordMode.NONE))
            else:
                path.unlink(missing_ok=True)
                cassette = stack.enter_context(
                    vcr_for_tests(self.scrubber).use_cassette(str(path), record_mode=RecordMode.ALL)
                )
                self._recording_http[item.nodeid] = path
                del cassette
            return (yield)

    def pytest_sessionfinish(self) -> None:
        self.flush()
        self.written += [p for p in self._recording_http.values() if p.exists()]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.replayed:
            slept = getattr(self.clock, "slept", 0.0)
            terminalreporter.write_line(
                f"dumont: {len(self.replayed)} test(s) replayed from {self.root}; timings shown are the recorded ones "
                f"(virtual clock: {slept:.1f} s of recorded waiting replayed without waiting)"
            )
        if self.written:
            terminalreporter.write_line(
                f"dumont: wrote {len(set(self.written))} cassette file(s) under {self.root}, scrubbed of secrets"
            )
