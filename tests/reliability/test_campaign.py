"""A fault campaign: many seeded journeys against the emulator with random faults; nothing may leak or hang.

Each journey starts from a whole market (the emulator is reset: ``offer_taken`` removes offers until then, and a
long campaign would otherwise end in ``NoMatchingOffer``), provisions one instance (with 429/5xx bursts, offers taken
at create, instances that never boot, exit or go offline, SSH that never comes up, lost create answers, slow
destroys), runs a command that may be cut short (the instance exits or SSH drops mid-command), and tears down.
Before each reset and at the end the emulator must show every instance destroyed; every provisioning failure must be
a named ``DumontError``, and no journey may outlast the sum of its deadlines. The figures go to
``docs/reliability.md`` (``PYTEST_DUMONT_FIGURES``). 30 journeys run by default, 250 with ``-m chaos``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from polling import record_figure

from pytest_dumont.clock import SystemClock
from pytest_dumont.emulator import CREATE_FAULTS, Faults
from pytest_dumont.errors import DumontError
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.ssh.connect import run_checked
from pytest_dumont.ssh.keys import SessionKey
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters
from pytest_dumont.vast.retry import RetryPolicy

JOURNEYS = 30
FULL_JOURNEYS = 250
SEED = 20261201
DEADLINES = Deadlines(boot=1.0, ssh=1.0, destroy_confirm=5.0, poll_max=0.1, ssh_retry_max=0.05)
ATTEMPTS = 3
BODY_TIMEOUT = 3.0
FAST_RETRIES = RetryPolicy(attempts=6, total_seconds=5.0, initial_wait=0.01, max_wait=0.05, jitter=0.01)
# Every wait is bounded: offers x (boot + SSH + destroy), then the body, then the final destroy; plus API slack.
JOURNEY_BOUND = ATTEMPTS * (DEADLINES.boot + DEADLINES.ssh + DEADLINES.destroy_confirm + 1.0) + BODY_TIMEOUT + 7.0


def draw_faults(rng: random.Random, journey: int) -> tuple[Faults, str | None]:
    create = [rng.choice((*CREATE_FAULTS, None, None)) for _ in range(rng.randint(0, 2))]
    burst = rng.random() < 0.3
    faults = Faults(
        rate_429=0.15 if burst else 0.0,
        rate_5xx=0.15 if burst else 0.0,
        retry_after=0,
        create_faults=[f for f in create if f is not None],
        destroy_delay=0.2 if rng.random() < 0.2 else 0.0,
        seed=journey,
    )
    body = rng.choice((None, None, None, "exits_mid_test", "ssh_drops"))
    return faults, body


@pytest.fixture
def session_key(tmp_path):
    key = SessionKey.generate(tmp_path / "key", "dumont-campaign")
    yield key
    key.remove()


@pytest.mark.parametrize(
    "journeys", [pytest.param(JOURNEYS, id="ci-slice"), pytest.param(FULL_JOURNEYS, id="full", marks=pytest.mark.chaos)]
)
def test_fault_campaign_leaks_nothing_and_names_every_failure(make_emulator, session_key, tmp_path, journeys):
    emulator = make_emulator(time_factor=0.25)
    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    unnamed: list[str] = []
    slowest = 0.0
    instances = 0
    leaked: list[int] = []
    started_campaign = time.monotonic()
    for journey in range(journeys):
        instances += len(emulator.world.history())
        leaked += emulator.world.live_ids()  # checked before the reset, which would destroy them
        emulator.world.reset()  # every offer back on the market, the history forgotten
        faults, body_fault = draw_faults(rng, journey)
        emulator.world.set_faults(faults)
        injected.update(faults.create_faults)
        injected.update(["api_bursts"] if faults.rate_429 else [])
        injected.update(["slow_destroy"] if faults.destroy_delay else [])
        provisioner = Provisioner(
            VastClient(emulator.url, emulator.api_key, policy=FAST_RETRIES),
            clock=SystemClock(),
            ledger=Ledger(),
            session_id=f"campaign{journey}",
            ssh_key=session_key,
            known_hosts=tmp_path / f"known_hosts{journey}",
            deadlines=DEADLINES,
            offer_attempts=ATTEMPTS,
        )
        started = time.monotonic()
        try:
            ready = provisioner.provision(ProvisionRequest(filters=OfferFilters(), image="img"))
        except DumontError as exc:
            outcomes[f"provisioning failed: {type(exc).__name__}"] += 1
        except Exception as exc:
            unnamed.append(f"journey {journey}: {type(exc).__name__}: {exc}")
        else:
            if body_fault is not None:
                injected[body_fault] += 1
                threading.Timer(0.1, inject_body_fault, (emulator, ready.id, body_fault)).start()
            try:
                run_checked(ready.connection, "sleep 0.3 && echo done", timeout=BODY_TIMEOUT)
                outcomes["passed"] += 1
            except Exception as exc:  # the test body's own error, as a user's test would see it
                outcomes[f"body failed: {type(exc).__name__}"] += 1
            try:
                provisioner.destroy(ready.record, ready.connection)
            except DumontError as exc:
                outcomes[f"teardown failed: {type(exc).__name__}"] += 1
        finally:
            emulator.world.set_faults(Faults())  # the session's end sweep is not what is under test
            provisioner.sweep_session()
            provisioner.client.close()
        took = time.monotonic() - started
        slowest = max(slowest, took)
        assert took <= JOURNEY_BOUND, f"journey {journey} took {took:.1f} s, past its deadlines ({JOURNEY_BOUND} s)"

    history = emulator.world.history()
    instances += len(history)
    leaked += emulator.world.live_ids()
    assert unnamed == []
    assert leaked == []
    assert all(row["destroyed"] for row in history)
    assert emulator.world.ledger()["live"] == 0
    assert outcomes["passed"] > 0 and sum(injected.values()) > journeys / 2  # the campaign did exercise both
    assert outcomes["provisioning failed: NoMatchingOffer"] == 0  # the market is whole at each journey's start
    record_figure(
        "campaign",
        journeys=journeys,
        instances=instances,
        faults_injected=sum(injected.values()),
        faults=dict(injected),
        outcomes=dict(outcomes),
        leaked=len(leaked),
        slowest_journey_s=slowest,
        bound_s=JOURNEY_BOUND,
        campaign_s=time.monotonic() - started_campaign,
    )


def inject_body_fault(emulator, instance_id: int, fault: str) -> None:
    """Mid-test trouble: the instance exits, or its SSH server drops every connection and comes back."""
    try:
        if fault == "exits_mid_test":
            emulator.world.force_status(instance_id, "exited", "Exited (137) mid-test")
        else:
            host = emulator.world.host(instance_id)
            host.close()
            host.open()
    except Exception:  # the journey may already have destroyed it
        return
