"""The world's state machine, billing ledger, faults and keys, driven by an injected clock and scheduler."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_dumont.clock import ManualClock
from pytest_dumont.emulator import CreateRequest, Faults, World
from pytest_dumont.emulator.errors import ApiError
from pytest_dumont.emulator.hosts import PortOnlyHost
from pytest_dumont.emulator.market import MarketError, load_market, nvidia_facts
from pytest_dumont.emulator.profiles import MANUAL, SEED, Schedule, schedule
from pytest_dumont.emulator.world import OCI_ERROR_MSG, WAITING_MSG

EPOCH = 1_767_381_000.0
MANUAL_SCHEDULE = Schedule(MANUAL)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5 me@test"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG90aGVyb3RoZXJvdGhlcm90aGVyb3RoZXJvdGhl other@test"


class Timer:
    def __init__(self, delay: float, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.delay, self.fn, self.args = delay, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        self.fn(*self.args)


class RecordingScheduler:
    """Records what the world schedules; a test fires timers itself, so nothing waits."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(delay, fn, args)
        self.timers.append(timer)
        return timer

    def fire_next(self) -> Timer:
        timer = next(t for t in self.timers if not t.cancelled)
        self.timers.remove(timer)
        timer.fire()
        return timer


MARKET = [
    {"id": 7, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_base": 0.3, "storage_cost": 0.15, "disk_space": 100,
     "reliability": 0.99, "driver_version": "580.95.05"},
    {"id": 8, "gpu_name": "A100 SXM4", "num_gpus": 1, "dph_base": 1.2, "storage_cost": 0.2, "disk_space": 500,
     "reliability": 0.999},
]  # fmt: skip


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def scheduler() -> RecordingScheduler:
    return RecordingScheduler()


@pytest.fixture
def make_world(clock: ManualClock, scheduler: RecordingScheduler) -> Callable[..., World]:
    def make(profile: Schedule = MANUAL_SCHEDULE, **kwargs: Any) -> World:
        return World(
            scheduler,
            market=load_market(MARKET),
            schedule=profile,
            clock=clock.now,
            wall_clock=lambda: EPOCH + clock.now(),
            **kwargs,
        )

    return make


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def create(world: World, offer_id: int = 7, **fields: Any) -> int:
    request = CreateRequest(**{"image": "nvidia/cuda:12.1.0-base-ubuntu22.04", "disk": 20.0, **fields})
    reply = world.create(offer_id, request)
    assert reply["success"] is True
    assert len(reply["instance_api_key"]) == 64
    return int(reply["new_contract"])


def status(world: World, instance_id: int) -> str | None:
    row = world.show(instance_id)
    assert row is not None
    return row["actual_status"]


def host_of(world: World, instance_id: int) -> PortOnlyHost:
    host = world.host(instance_id)
    assert isinstance(host, PortOnlyHost)
    return host


def test_manual_profile_moves_only_on_advance(world, scheduler):
    instance_id = create(world)
    assert status(world, instance_id) is None
    assert scheduler.timers == []
    assert world.advance(instance_id)["actual_status"] == "loading"
    assert world.advance(instance_id) == {"success": True, "actual_status": "running", "ssh_up": False}
    assert not host_of(world, instance_id).is_open
    assert world.advance(instance_id)["ssh_up"] is True
    assert host_of(world, instance_id).is_open
    with pytest.raises(ApiError) as info:
        world.advance(instance_id)
    assert info.value.status == 409


def test_seed_profile_schedules_the_seed_timeline_scaled_by_the_time_factor(make_world, scheduler):
    world = make_world(schedule("seed", time_factor=0.5))
    instance_id = create(world)
    steps = []
    for _ in range(3):
        timer = scheduler.fire_next()
        steps.append((timer.delay, status(world, instance_id), host_of(world, instance_id).is_open))
    assert steps == [(10.5, "loading", False), (26.0, "running", False), (6.2, "running", True)]
    assert scheduler.timers == []
    assert SEED.to_loading + SEED.to_running == 73.0  # running 73 s after create, as in the seed run


def test_a_transition_scheduled_before_stop_is_ignored(make_world, scheduler):
    world = make_world(schedule("seed"))
    instance_id = create(world)
    stale = scheduler.timers[0]
    world.stop(instance_id)
    assert stale.cancelled
    stale.fire()  # as if the timer had already left the loop when stop came
    row = world.show(instance_id)
    assert row is not None
    assert (row["actual_status"], row["intended_status"], row["cur_state"]) == ("exited", "stopped", "stopped")


def test_ledger_bills_gpu_while_running_and_storage_while_existing(world, clock):
    instance_id = create(world)  # t=0, 20 GB at $0.15/GB/month, $0.30/h GPU
    clock.advance(10)
    world.advance(instance_id)  # loading at t=10: not GPU-billed
    clock.advance(20)
    world.advance(instance_id)  # running at t=30
    clock.advance(60)
    world.stop(instance_id)  # t=90: 60 s of GPU
    clock.advance(60)
    world.start(instance_id)  # t=150: loading again
    clock.advance(50)
    world.advance(instance_id)  # running at t=200
    clock.advance(60)
    world.destroy(instance_id)  # t=260: 60 s more of GPU
    clock.advance(1000)  # nothing accrues after destroy
    ledger = world.ledger()
    (entry,) = ledger["instances"]
    storage_hourly = 20 * 0.15 / 720
    assert entry["gpu_seconds"] == 120
    assert entry["storage_seconds"] == 260
    assert entry["storage_total_cost"] == pytest.approx(storage_hourly)
    assert entry["dph_total"] == pytest.approx(0.3 + storage_hourly)
    assert entry["cost"] == pytest.approx(0.3 * 120 / 3600 + storage_hourly * 260 / 3600)
    assert ledger["total_cost"] == entry["cost"]
    assert ledger["live"] == 0
    assert entry["destroyed"]


def test_ledger_totals_several_instances_and_credit_goes_down(world, clock):
    first = create(world, 7)
    second = create(world, 8, disk=100.0)
    world.advance(second)
    world.advance(second)
    clock.advance(3600)
    ledger = world.ledger()
    costs = {e["id"]: e["cost"] for e in ledger["instances"]}
    assert costs[first] == pytest.approx(20 * 0.15 / 720)
    assert costs[second] == pytest.approx(1.2 + 100 * 0.2 / 720)
    assert ledger["total_cost"] == pytest.approx(sum(costs.values()))
    assert world.user()["credit"] == pytest.approx(100 - ledger["total_cost"])


def test_rented_offers_leave_the_default_search_and_come_back_on_destroy(world):
    instance_id = create(world, 7)
    rented = {o["id"]: o for o in world.offers()}[7]
    assert rented["rented"] is True
    assert rented["rentable"] is False
    assert [o["id"] for o in world.search({"rentable": {"eq": True}})] == [8]
    with pytest.raises(ApiError) as info:
        create(world, 7)
    assert (info.value.status, info.value.error) == (404, "no_such_ask")
    world.destroy(instance_id)
    assert sorted(o["id"] for o in world.search({"rentable": {"eq": True}})) == [7, 8]


def test_destroy_twice_is_no_such_instance_and_the_row_is_gone(world):
    instance_id = create(world)
    world.destroy(instance_id)
    assert world.show(instance_id) is None
    assert world.show(123) is None
    with pytest.raises(ApiError) as info:
        world.destroy(instance_id)
    assert info.value.body() == {"success": False, "error": "no_such_instance", "msg": "Instance not found."}


def test_offer_taken_fault_refuses_the_create_and_removes_the_offer_until_reset(make_world):
    world = make_world(faults=Faults(create_faults=["offer_taken"]))
    with pytest.raises(ApiError) as info:
        create(world, 7)
    assert info.value.status == 404
    assert info.value.body()["msg"] == "error 404/3603: no_such_ask Instance type by id 7 is not available."
    assert 7 not in {o["id"] for o in world.offers()}
    assert world.history() == []
    world.reset()
    assert 7 in {o["id"] for o in world.offers()}


def test_never_boots_stays_loading_with_a_waiting_layer(make_world):
    world = make_world(faults=Faults(create_faults=["never_boots"]))
    instance_id = create(world)
    world.advance(instance_id)
    row = world.show(instance_id)
    assert row is not None
    assert (row["actual_status"], row["status_msg"]) == ("loading", WAITING_MSG)
    with pytest.raises(ApiError):
        world.advance(instance_id)


@pytest.mark.parametrize(("fault", "final", "msg"), [("exits", "exited", OCI_ERROR_MSG), ("offline", "offline", None)])
def test_a_boot_that_fails_ends_in_its_fault(make_world, fault, final, msg):
    world = make_world(faults=Faults(create_faults=[fault, "ssh_never_up"]))
    instance_id = create(world)
    world.advance(instance_id)
    world.advance(instance_id)
    row = world.show(instance_id)
    assert row is not None
    assert row["actual_status"] == final
    assert row["intended_status"] == "running"
    if msg:
        assert row["status_msg"] == msg
    assert world.ledger()["gpu_cost"] == 0
    second = create(world, 8)  # the queue is consumed in order: the next create gets ssh_never_up
    world.advance(second)
    world.advance(second)
    assert status(world, second) == "running"
    with pytest.raises(ApiError):
        world.advance(second)
    assert not host_of(world, second).is_open


def test_faults_are_validated_merged_and_seeded():
    with pytest.raises(ValueError, match="probability"):
        Faults(rate_429=1.5)
    with pytest.raises(ValueError, match="unknown create fault"):
        Faults(create_faults=["meteor"])
    with pytest.raises(ValueError, match="auth_status"):
        Faults(auth_status=500)
    with pytest.raises(ValueError, match="unknown fault settings"):
        Faults().updated({"rate_42": 1})
    merged = Faults(rate_429=0.25, seed=3).updated({"retry_after": 0, "create_faults": ["exits"]})
    assert merged.to_dict() == {
        "rate_429": 0.25, "rate_5xx": 0.0, "retry_after": 0, "auth_status": 401, "create_faults": ["exits"], "seed": 3,
        "destroy_delay": 0.0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="destroy_delay"):
        Faults(destroy_delay=-1)
    first, second = Faults(rate_429=0.3, rate_5xx=0.3, seed=9), Faults(rate_429=0.3, rate_5xx=0.3, seed=9)
    assert [first.roll() for _ in range(20)] == [second.roll() for _ in range(20)]
    rolls = {Faults(rate_429=0.5, rate_5xx=0.5, seed=s).roll() for s in range(40)}
    assert rolls == {429, 502, 503}


def test_account_keys_reach_new_ssh_instances_and_attach_reaches_existing_ones(world):
    world.add_account_key(KEY)
    with_ssh = create(world, 7, runtype="ssh_direc ssh_proxy")
    args_only = create(world, 8, runtype="args", args=["python", "-V"])
    assert host_of(world, with_ssh).keys == [KEY]
    assert host_of(world, args_only).keys == []
    world.attach_key(with_ssh, OTHER_KEY)
    assert host_of(world, with_ssh).keys == [KEY, OTHER_KEY]
    assert [k["public_key"] for k in world.instance_keys(with_ssh)] == [KEY, OTHER_KEY]
    for bad in ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----", "hello", ""):
        with pytest.raises(ApiError) as info:
            world.attach_key(with_ssh, bad)
        assert info.value.status == 400


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"image": None}, "image is required"),
        ({"disk": 0.5}, "disk"),
        ({"label": "x" * 257}, "label"),
        ({"runtype": "ssh_tunnel"}, "runtype"),
        ({"price": 500.0}, "price"),
        ({"onstart": "x" * 5000}, "4096"),
    ],
)
def test_create_requests_are_checked_like_the_api(fields, words):
    with pytest.raises(ApiError) as info:
        CreateRequest(**{"image": "img", **fields})
    assert info.value.status == 400
    assert info.value.error == "invalid_args"
    assert words in info.value.msg


def test_create_accepts_the_cli_runtypes_and_a_template_without_image():
    for runtype in ("ssh", "ssh_proxy", "ssh_direc ssh_proxy", "jupyter_direc ssh_direc ssh_proxy", "args"):
        assert CreateRequest(image="img", runtype=runtype).runtype == runtype
    assert CreateRequest(template_hash_id="abc123").image is None


def test_rows_carry_what_the_cli_reads(world, clock):
    instance_id = create(world, env={"A": "1", "-p 8080:8080": "1"}, label="seed-run", runtype="ssh_direc ssh_proxy")
    row = world.show(instance_id)
    assert row is not None
    assert row["start_date"] == EPOCH
    assert row["extra_env"] == [["A", "1"]]
    assert row["ports"] is None
    assert row["intended_status"] == "running"
    assert row["cur_state"] == "running"
    world.advance(instance_id)
    world.advance(instance_id)
    row = world.show(instance_id)
    assert row is not None
    host = host_of(world, instance_id)
    direct = host.direct_ports
    assert set(direct) == {22, 8080}
    assert row["ports"] == {f"{c}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(p)}] for c, p in direct.items()}
    assert (row["ssh_host"], row["ssh_port"], row["public_ipaddr"]) == ("127.0.0.1", host.port, "127.0.0.2")
    assert host.port not in direct.values()
    assert row["instance"]["gpuCostPerHour"] == 0.3
    world.stop(instance_id)
    row = world.show(instance_id)
    assert row is not None
    assert row["instance"]["gpuCostPerHour"] == 0.0
    assert row["ports"] is None


def test_a_jupyter_runtype_puts_ssh_port_one_below_the_server(world):
    instance_id = create(world, runtype="jupyter_proxy ssh_proxy")
    row = world.show(instance_id)
    assert row is not None
    assert row["ssh_port"] + 1 == host_of(world, instance_id).port


def test_history_keeps_every_instance_with_its_timeline(world, clock):
    instance_id = create(world, label="kept")
    clock.advance(5)
    world.advance(instance_id)
    clock.advance(5)
    world.advance(instance_id)
    clock.advance(1)
    world.advance(instance_id)
    clock.advance(4)
    world.destroy(instance_id)
    (entry,) = world.history()
    assert entry["destroyed"] is True
    assert entry["label"] == "kept"
    marks = [entry[name] - EPOCH for name in ("created_at", "loading_at", "running_at", "ssh_up_at", "destroyed_at")]
    assert marks == [0, 5, 10, 11, 15]
    assert [t["actual_status"] for t in entry["transitions"]] == [None, "loading", "running", "running", "running"]
    assert [t["event"] for t in entry["transitions"]][-2:] == ["ssh_up", "destroyed"]


def test_force_status_jumps_and_the_schedule_goes_on(make_world, scheduler, clock):
    world = make_world(schedule("fast"))
    instance_id = create(world)
    world.force_status(instance_id, "loading", "3f4ca61aafcd: Downloading")
    row = world.show(instance_id)
    assert row is not None
    assert row["status_msg"] == "3f4ca61aafcd: Downloading"
    assert scheduler.timers[-1].delay == pytest.approx(0.15)
    scheduler.timers[-1].fire()
    assert status(world, instance_id) == "running"
    with pytest.raises(ApiError):
        world.force_status(instance_id, "sleeping")


def test_reset_destroys_everything_and_shutdown_releases_hosts(world):
    first = create(world)
    host = host_of(world, first)
    world.advance(first)
    world.advance(first)
    world.advance(first)
    world.add_account_key(KEY)
    world.set_faults(Faults(rate_429=1.0))
    world.reset()
    assert not host.is_open
    assert world.live_ids() == []
    assert world.history() == []
    assert world.account_keys() == []
    assert world.faults.rate_429 == 0
    second = create(world)
    world.shutdown()
    assert world.live_ids() == []
    assert world.history()[0]["id"] == second
    assert world.history()[0]["destroyed"]


# -- the market -----------------------------------------------------------------------------------------------------


def test_the_bundled_market_loads_with_the_seed_offer():
    offers = {o["id"]: o for o in load_market()}
    seed = offers[29292839]
    assert (seed["gpu_name"], seed["geolocation"], seed["driver_version"]) == (
        "RTX 4090",
        "British Columbia, CA",
        "580.95.05",
    )
    assert seed["dph_base"] + 20 * seed["storage_cost"] / 720 == pytest.approx(0.1689, abs=5e-5)
    assert nvidia_facts(seed) == ("NVIDIA GeForce RTX 4090", "580.95.05", 24564, 1)


def test_a_market_file_is_completed_and_gpu_models_map_to_nvidia_names(tmp_path):
    path = tmp_path / "market.json"
    path.write_text(json.dumps({"offers": [dict(MARKET[1], num_gpus=2), dict(MARKET[0], id=9, gpu_name="Tesla T4")]}))
    a100, t4 = load_market(path)
    assert (a100["gpu_total_ram"], a100["ask_contract_id"], a100["verified"]) == (2 * 81920.0, 8, True)
    assert nvidia_facts(a100) == ("NVIDIA A100-SXM4-80GB", "570.86.15", 81920, 2)
    assert nvidia_facts(t4)[0] == "NVIDIA Tesla T4"
    path.write_text(json.dumps([MARKET[0]]))
    assert [o["id"] for o in load_market(path)] == [7]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{oops", "not valid JSON"),
        ('{"offers": []}', "no offers"),
        ('{"rows": 1}', "expected a list of offers"),
        (json.dumps([{k: v for k, v in MARKET[0].items() if k != "dph_base"}]), "missing required field 'dph_base'"),
        (json.dumps([dict(MARKET[0], num_gpus="1")]), "num_gpus must be int"),
        (json.dumps([dict(MARKET[0], reliability=1.5)]), "reliability must be between 0 and 1"),
        (json.dumps([dict(MARKET[0], driver_version="new")]), "driver_version"),
        (json.dumps([dict(MARKET[0], verification="maybe")]), "verification"),
        (json.dumps([MARKET[0], MARKET[0]]), "appears twice"),
    ],
)
def test_a_bad_market_file_names_the_offer_and_the_problem(tmp_path, content, words):
    path = tmp_path / "market.json"
    path.write_text(content)
    with pytest.raises(MarketError, match=words) as info:
        load_market(path)
    assert str(path) in str(info.value)


def test_a_missing_market_file_is_a_market_error(tmp_path):
    with pytest.raises(MarketError, match="cannot read market file"):
        load_market(tmp_path / "absent.json")
