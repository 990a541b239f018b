"""The emulated account: offers' rented state, instances and their boot state machine, billing, SSH keys, faults.

One lock guards it all. Scheduled transitions come back on the scheduler's thread carrying the instance's
``epoch`` at scheduling time; stop, start, reboot, a forced status and destroy bump the epoch, so a stale
transition is a no-op instead of a race. SSH servers are opened and closed under the same lock, in order.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .errors import ApiError, invalid_args, no_such_ask
from .faults import Faults
from .hosts import HostSpec, InstanceHost, PortOnlyHost
from .instance import Cancellable, CreateRequest, Instance, instance_row
from .market import load_market
from .profiles import FAST, Schedule
from .query import search_offers

FIRST_INSTANCE_ID = 29441924  # the seed run's instance id
STATUSES = ("created", "loading", "running", "stopped", "frozen", "exited", "rebooting", "unknown", "offline")
PULL_MSG = "3f4ca61aafcd: Pull complete"
WAITING_MSG = "3f4ca61aafcd: Waiting"
OUTBID_MSG = "Instance stopped: outbid by a higher bid (min bid now ${min_bid:.4f}/h). Raise your bid to restart it."
UNDERBID_MSG = "Your bid ${bid:.4f}/h is below the minimum bid ${min_bid:.4f}/h: the instance was created stopped."
OCI_ERROR_MSG = (
    "Error response from daemon: OCI runtime create failed: runc create failed: unable to start container "
    'process: error during container init: error running hook #0: exit status 1, stdout: , stderr: "nvidia-'
    'container-cli: initialization error: nvml error: driver/library version mismatch": unknown'
)


def outbid_min_bid(bid: float) -> float:
    """The machine's minimum bid once someone outbids ``bid``: a quarter more, so any bid at the old price is short."""
    return round(bid * 1.25 + 0.001, 4)


# After a forced status, the schedule continues with this step.
_NEXT_STEP = {None: "to_loading", "created": "to_loading", "rebooting": "to_loading", "loading": "to_running"}


class Scheduler(Protocol):
    """Runs ``fn(*args)`` after ``delay`` seconds on some other thread (``LoopThread`` fits)."""

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> Cancellable: ...


class World:
    """Everything the emulated API knows, behind one lock; the HTTP layer only translates."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        market: list[dict[str, Any]] | None = None,
        schedule: Schedule | None = None,
        faults: Faults | None = None,
        host_factory: Callable[[HostSpec], InstanceHost] = PortOnlyHost,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        credit: float = 100.0,
    ) -> None:
        self._lock = threading.RLock()
        self._scheduler = scheduler
        self._host_factory = host_factory
        self._clock = clock
        self._wall = wall_clock
        self._initial_credit = credit
        self._market = [dict(o) for o in (market if market is not None else load_market())]
        self._offers = {o["id"]: dict(o) for o in self._market}
        self._rented: dict[int, int] = {}  # offer id -> instance id
        self._instances: dict[int, Instance] = {}  # every instance ever, destroyed ones too
        self._ids = itertools.count(FIRST_INSTANCE_ID)
        self._key_ids = itertools.count(1)
        self._account_keys: dict[int, dict[str, Any]] = {}
        self._schedule = schedule or Schedule(FAST)
        self._faults = faults.updated({}) if faults is not None else Faults()  # a copy: creates consume it
        self._templates: dict[str, dict[str, Any]] = {}  # template_hash_id -> template; none until one is added

    # -- configuration -------------------------------------------------------------------------------------------

    @property
    def schedule(self) -> Schedule:
        with self._lock:
            return self._schedule

    def set_schedule(self, schedule: Schedule) -> None:
        """Boot schedule for instances created from now on (running ones keep theirs)."""
        with self._lock:
            self._schedule = schedule

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def roll_http_fault(self) -> int | None:
        """429, 502 or 503 drawn with the configured probabilities, or ``None`` to answer normally."""
        with self._lock:
            return self._faults.roll()

    # -- offers and account ---------------------------------------------------------------------------------------

    def offers(self) -> list[dict[str, Any]]:
        """The market as a search sees it: rented offers carry rented=true, rentable=false."""
        with self._lock:
            return [self._offer_view(o) for o in self._offers.values()]

    def _offer_view(self, offer: dict[str, Any]) -> dict[str, Any]:
        view = dict(offer)
        if offer["id"] in self._rented:
            view["rented"] = True
            view["rentable"] = False
        return view

    def search(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        return search_offers(self.offers(), query)

    def gpu_names(self) -> list[str]:
        with self._lock:
            return sorted({str(o["gpu_name"]) for o in self._market})

    def user(self) -> dict[str, Any]:
        """``GET /users/current``: spendable credit goes down as the ledger grows; the api_key is never shown."""
        ledger = self.ledger()
        with self._lock:
            first_key = next(iter(self._account_keys.values()), None)
        return {
            "id": 424242,
            "username": "emulator",
            "email": "emulator@example.invalid",
            "fullname": "pytest-dumont emulator",
            "credit": round(self._initial_credit - ledger["total_cost"], 6),
            "balance": 0.0,
            "balance_threshold": 0.0,
            "balance_threshold_enabled": False,
            "billed_expected": 0.0,
            "can_pay": True,
            "has_billing": True,
            "email_verified": True,
            "host_agreement_accepted": False,
            "ssh_key": first_key["public_key"] if first_key else None,
            "key_id": None,
            "sid": None,
        }

    def add_account_key(self, public_key: Any) -> dict[str, Any]:
        """``POST /ssh/``: installed into instances created afterwards (vast-api.md section 7)."""
        text = check_public_key(public_key, "no_ssh_key")
        with self._lock:
            key_id = next(self._key_ids)
            key: dict[str, Any] = {
                "id": key_id,
                "user_id": 424242,
                "public_key": text,
                "key": text,
                "created_at": self._wall(),
                "deleted_at": None,
            }
            self._account_keys[key_id] = key
            return dict(key)

    def account_keys(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(k) for k in self._account_keys.values()]

    def delete_account_key(self, key_id: int) -> None:
        with self._lock:
            if self._account_keys.pop(key_id, None) is None:
                raise ApiError(404, "no_such_ssh_key", "SSH key not found.")

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def create(self, offer_id: int, request: CreateRequest) -> dict[str, Any]:
        """Rent ``offer_id``; answers like ``PUT /asks/{id}/``: ``new_contract`` and ``instance_api_key``."""
        with self._lock:
            offer = self._offers.get(offer_id)
            if offer is None or offer_id in self._rented:
                raise no_such_ask(offer_id)
            if request.disk > float(offer["disk_space"]):
                raise invalid_args(f"disk {request.disk:g} GB is more than the {offer['disk_space']} GB of this offer")
            if request.template_hash_id is not None and request.template_hash_id not in self._templates:
                # Stricter than accepting it: the emulator knows no template it was not given.
                raise ApiError(404, "no_such_template", f"Template {request.template_hash_id} not found.")
            fault = self._faults.next_create_fault()
            if fault == "offer_taken":
                del self._offers[offer_id]  # someone else got it: gone until reset
                raise no_such_ask(offer_id)
            if fault == "outbid" and request.price is not None:
                # A higher bid for this machine came between the client's search and its create (until reset).
                offer["min_bid"] = outbid_min_bid(request.price)
            instance_id = next(self._ids)
            api_key = secrets.token_hex(32)
            # A machine without open ports (direct_port_count 0) maps none: clients fall back to the SSH proxy.
            ports = request.mapped_ports if int(offer.get("direct_port_count") or 0) > 0 else ()
            host = self._host_factory(HostSpec(instance_id, dict(offer), api_key, request.env_vars, ports))
            inst = Instance(
                id=instance_id,
                offer=dict(offer),
                api_key=api_key,
                host=host,
                schedule=self._schedule,
                request=request,
                label=request.label,
                fault=fault,
                created_mono=self._clock(),
                created_wall=self._wall(),
            )
            try:
                # Account keys reach new ssh/jupyter instances only (attach is for existing ones).
                if "ssh" in request.runtype or "jupyter" in request.runtype:
                    for key in self._account_keys.values():
                        inst.add_key(key["public_key"])
            except BaseException:
                host.release()
                raise
            self._instances[instance_id] = inst
            self._rented[offer_id] = instance_id
            self._record(inst)
            min_bid = float(offer.get("min_bid") or 0.0)
            if request.price is not None and request.price < min_bid:
                # Vast creates an underbid interruptible instance stopped and says so (dstack destroys it).
                inst.intended_status = inst.cur_state = inst.next_state = "stopped"
                msg = UNDERBID_MSG.format(bid=request.price, min_bid=min_bid)
                self._set_status(inst, None, msg, mark="stopped")
                return {
                    "success": False,
                    "error": "bid_too_low",
                    "msg": msg,
                    "new_contract": instance_id,
                    "instance_api_key": api_key,
                }
            self._schedule_step(inst, "to_loading")
            if fault == "lost_answer":
                # The machine is rented, but the answer is lost at the gateway: the client never learns the id.
                raise ApiError(502, "bad_gateway", "Bad Gateway")
            return {"success": True, "new_contract": instance_id, "instance_api_key": api_key}

    def destroy(self, instance_id: int) -> None:
        """Destroy: billing stops, the SSH server closes for good, the offer returns to the market."""
        with self._lock:
            inst = self._live(instance_id)
            inst.bump()
            inst.stop_gpu_clock(self._clock())
            inst.destroyed_mono = self._clock()
            inst.destroyed_wall = self._wall()
            inst.ssh_up = False
            self._rented.pop(int(inst.offer["id"]), None)
            self._record(inst, mark="destroyed")
        # Outside the lock: closing the SSH server and ending the processes takes a while, and another instance's
        # destroy must not wait for it (its billing would stop late).
        inst.host.release()

    def stop(self, instance_id: int) -> None:
        """Stop: intended stopped, actual exited, SSH closed, GPU billing stops (storage goes on)."""
        with self._lock:
            inst = self._live(instance_id)
            if inst.intended_status == "stopped":
                return
            inst.bump()
            inst.intended_status = inst.cur_state = inst.next_state = "stopped"
            self._set_status(inst, "exited", "Exited (0) after stop request", mark="stopped")
            self._close_ssh(inst)
            inst.host.close()  # the container stops: its onstart's processes end too, SSH up or not

    def start(self, instance_id: int) -> None:
        """Start a stopped instance: loading, then running and SSH per the instance's schedule; files are kept."""
        with self._lock:
            inst = self._live(instance_id)
            if inst.intended_status == "running":
                return
            min_bid = float(inst.offer.get("min_bid") or 0.0)
            if inst.request.price is not None and inst.request.price < min_bid:
                raise ApiError(
                    200, "bid_too_low", f"Your bid ${inst.request.price:.4f}/h is below the min bid ${min_bid:.4f}/h."
                )
            inst.bump()
            inst.intended_status = inst.cur_state = inst.next_state = "running"
            self._set_status(inst, "loading", "starting container")
            self._schedule_step(inst, "to_running")

    def reboot(self, instance_id: int) -> None:
        """Reboot a running instance: SSH drops, loading, then running again; a stopped one refuses."""
        with self._lock:
            inst = self._live(instance_id)
            if inst.intended_status != "running":
                # Vast refuses some state changes with HTTP 200 and success: false.
                raise ApiError(200, "instance_stopped", f"Instance {instance_id} is stopped: start it instead.")
            inst.bump()
            self._close_ssh(inst)
            inst.host.close()  # the container restarts: its onstart runs again once it is running
            self._set_status(inst, "rebooting", "rebooting")  # Vast shows its own transient status first
            self._schedule_step(inst, "to_loading")

    def set_label(self, instance_id: int, label: str) -> None:
        with self._lock:
            self._live(instance_id).label = label

    def attach_key(self, instance_id: int, public_key: Any) -> None:
        """``POST /instances/{id}/ssh/``: the key works at once if SSH is up, else from when it comes up."""
        text = check_public_key(public_key, "invalid_args")
        with self._lock:
            self._live(instance_id).add_key(text)

    def instance_keys(self, instance_id: int) -> list[dict[str, Any]]:
        with self._lock:
            inst = self._live(instance_id)
            return [{"id": kid, "name": f"key-{kid}", "public_key": k} for kid, k in inst.keys.items()]

    def detach_key(self, instance_id: int, key_id: int) -> None:
        """Forget a key; the instance's SSH server keeps accepting it, having no revoke (docs/emulator.md)."""
        with self._lock:
            if self._live(instance_id).keys.pop(key_id, None) is None:
                raise ApiError(404, "no_such_ssh_key", "SSH key not found on this instance.")

    def outbid(self, instance_id: int, min_bid: float | None = None) -> dict[str, Any]:
        """Someone bids more for an interruptible instance's machine: it stops, and cannot restart below the new bid."""
        with self._lock:
            inst = self._live(instance_id)
            bid = inst.request.price
            if bid is None:
                raise ApiError(409, "not_interruptible", f"instance {instance_id} is on-demand: it cannot be outbid")
            new_min = outbid_min_bid(bid) if min_bid is None else float(min_bid)
            if new_min <= bid:
                raise invalid_args(f"min_bid must be above the instance's bid {bid:g}, got {new_min:g}")
            self._offers[int(inst.offer["id"])]["min_bid"] = new_min
            inst.offer["min_bid"] = new_min
            inst.bump()
            inst.intended_status = inst.cur_state = inst.next_state = "stopped"
            self._set_status(inst, "exited", OUTBID_MSG.format(min_bid=new_min), mark="stopped")
            self._close_ssh(inst)
            inst.host.close()
            return {"success": True, "min_bid": new_min}

    def destroy_many(self, instance_ids: list[int]) -> None:
        """Bulk destroy, all or nothing: one gone id refuses the whole request whatever the order (the stricter)."""
        with self._lock:
            self._check_all_live(instance_ids)
            for instance_id in instance_ids:
                self.destroy(instance_id)

    def set_state_many(self, instance_ids: list[int], state: str) -> None:
        """Bulk stop or start, all or nothing like ``destroy_many``."""
        with self._lock:
            self._check_all_live(instance_ids)
            change = self.stop if state == "stopped" else self.start
            for instance_id in instance_ids:
                change(instance_id)

    def _check_all_live(self, instance_ids: list[int]) -> None:
        gone = [i for i in instance_ids if i not in self._instances or self._instances[i].destroyed_mono is not None]
        if gone:
            raise ApiError(404, "no_such_instance", f"Instance not found: {', '.join(map(str, gone))}.")

    def set_gpu_utilization(self, instance_id: int, percent: float) -> None:
        with self._lock:
            inst = self._live(instance_id)
            inst.gpu_util = float(percent)
            inst.host.set_gpu_utilization(float(percent))

    # -- state machine ----------------------------------------------------------------------------------------------

    def advance(self, instance_id: int) -> dict[str, Any]:
        """Take the next boot step now (the ``manual`` profile's only way forward); 409 when there is none."""
        with self._lock:
            inst = self._live(instance_id)
            if not self._step(inst, manual=True):
                raise ApiError(409, "nothing_to_advance", f"instance {instance_id} has no next step: {inst.describe()}")
            return {"success": True, "actual_status": inst.actual_status, "ssh_up": inst.ssh_up}

    def force_status(self, instance_id: int, actual_status: str | None, status_msg: str | None = None) -> None:
        """Jump to ``actual_status``; the schedule then continues from there (loading goes on to running...)."""
        if actual_status is not None and actual_status not in STATUSES:
            raise ApiError(400, "invalid_args", f"actual_status must be null or one of {', '.join(STATUSES)}")
        with self._lock:
            inst = self._live(instance_id)
            inst.bump()
            if actual_status != "running":
                self._close_ssh(inst)
            self._set_status(inst, actual_status, status_msg)
            next_step = _NEXT_STEP.get(actual_status)
            if actual_status == "running" and not inst.ssh_up:
                next_step = "to_ssh"
            if next_step is not None:
                self._schedule_step(inst, next_step)

    def _schedule_step(self, inst: Instance, step: str) -> None:
        if step == "to_ssh" and inst.fault == "ssh_never_up":
            return
        if step == "to_running" and inst.fault == "never_boots":
            inst.status_msg = WAITING_MSG
            return
        delay = inst.schedule.delay(step)
        if delay is not None:
            inst.pending = self._scheduler.call_later(delay, self._fire, inst.id, inst.epoch)

    def _fire(self, instance_id: int, epoch: int) -> None:
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is not None and inst.destroyed_mono is None and inst.epoch == epoch:
                inst.pending = None
                self._step(inst, manual=False)

    def _step(self, inst: Instance, *, manual: bool) -> bool:
        """Move one step along null -> loading -> running -> SSH up, or into the instance's fault."""
        if manual and inst.pending is not None:
            inst.bump()  # an explicit advance replaces the pending timer
        if inst.intended_status != "running":
            return False
        if inst.actual_status == "created" and inst.status_msg == OCI_ERROR_MSG:
            return False  # a failed boot stays there, as on Vast
        if inst.actual_status in (None, "created", "rebooting"):
            self._set_status(inst, "loading", PULL_MSG if inst.actual_status != "rebooting" else "starting container")
            self._schedule_step(inst, "to_running")
        elif inst.actual_status == "loading":
            if inst.fault == "never_boots":
                return False
            if inst.fault == "exits":
                self._set_status(inst, "exited", OCI_ERROR_MSG)
            elif inst.fault == "oci_error":
                self._set_status(inst, "created", OCI_ERROR_MSG)  # observed on Vast, and what dstack expects
            elif inst.fault == "offline":
                self._set_status(inst, "offline", "host offline")
            else:
                main = inst.request.main_command
                kind = "args" if main is not None else "jupyter" if "jupyter" in inst.request.runtype else "ssh"
                self._set_status(inst, "running", f"success, running {inst.request.image or 'template'}/{kind}")
                if main is not None:
                    inst.host.run_main(main)  # runtype args: the container's own process
                elif inst.request.onstart:
                    inst.host.run_onstart(inst.request.onstart)  # like Vast: at each container start
                self._schedule_step(inst, "to_ssh")
        elif inst.actual_status == "running" and not inst.ssh_up and inst.fault != "ssh_never_up":
            inst.host.open()
            inst.ssh_up = True
            self._record(inst, mark="ssh_up")
        else:
            return False
        return True

    def _set_status(self, inst: Instance, status: str | None, msg: str | None, mark: str | None = None) -> None:
        now = self._clock()
        if inst.actual_status == "running" and status != "running":
            inst.stop_gpu_clock(now)
        if status == "running" and inst.running_since is None:
            inst.running_since = now
        inst.actual_status = status
        inst.status_msg = msg
        self._record(inst, mark=mark or status)

    def _close_ssh(self, inst: Instance) -> None:
        if inst.ssh_up:
            inst.ssh_up = False
            inst.host.close()

    def _record(self, inst: Instance, mark: str | None = "created") -> None:
        inst.record(self._clock(), self._wall(), mark)

    def _live(self, instance_id: int) -> Instance:
        inst = self._instances.get(instance_id)
        if inst is None or inst.destroyed_mono is not None:
            raise ApiError(404, "no_such_instance", "Instance not found.")
        return inst

    # -- views --------------------------------------------------------------------------------------------------------

    def show(self, instance_id: int) -> dict[str, Any] | None:
        """The row of a live instance, or ``None`` (destroyed or unknown: ``{"instances": null}``)."""
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is None or inst.destroyed_mono is not None:
                return None
            return instance_row(inst, self._wall(), self._clock())

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            wall, now = self._wall(), self._clock()
            return [instance_row(i, wall, now) for i in self._instances.values() if i.destroyed_mono is None]

    def instance_for_key(self, api_key: str) -> int | None:
        """The instance whose restricted ``instance_api_key`` this is (it may only start/stop/destroy it)."""
        with self._lock:
            for inst in self._instances.values():
                if secrets.compare_digest(inst.api_key, api_key) and inst.destroyed_mono is None:
                    return inst.id
            return None

    def instance_api_key(self, instance_id: int) -> str:
        """The restricted key of any instance ever created (a leak check looks for it in artifacts)."""
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                raise ApiError(404, "no_such_instance", "Instance not found.")
            return inst.api_key

    def host(self, instance_id: int) -> InstanceHost:
        with self._lock:
            return self._live(instance_id).host

    def ledger(self) -> dict[str, Any]:
        """Accrued cost per instance and in total: GPU while running, storage from create to destroy."""
        with self._lock:
            now = self._clock()
            entries = [inst.charges(now) for inst in self._instances.values()]
        totals = {name: sum(e[name] for e in entries) for name in ("gpu_cost", "storage_cost", "cost")}
        return {
            "instances": entries,
            "total_cost": totals["cost"],
            "gpu_cost": totals["gpu_cost"],
            "storage_cost": totals["storage_cost"],
            "live": sum(1 for e in entries if not e["destroyed"]),
        }

    def history(self) -> list[dict[str, Any]]:
        """Every instance ever created, destroyed or not, with its timeline and cost: leak checks read this."""
        with self._lock:
            now = self._clock()
            return [inst.history(now) for inst in self._instances.values()]

    def live_ids(self) -> list[int]:
        with self._lock:
            return [i.id for i in self._instances.values() if i.destroyed_mono is None]

    # -- whole world -----------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Destroy every live instance (SSH servers closed, processes killed)."""
        for instance_id in self.live_ids():
            with contextlib.suppress(ApiError):  # destroyed meanwhile by another thread
                self.destroy(instance_id)

    def reset(self) -> None:
        """Destroy everything, forget history and account keys, restore the market, clear the faults."""
        self.shutdown()
        with self._lock:
            self._instances.clear()
            self._rented.clear()
            self._account_keys.clear()
            self._offers = {o["id"]: dict(o) for o in self._market}
            self._faults = Faults()


def check_public_key(value: Any, error: str) -> str:
    """An OpenSSH one-line public key; private keys and other text are refused with 400."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, error, "ssh_key is required: an OpenSSH public key such as 'ssh-ed25519 AAAA... me'")
    text = value.strip()
    if "PRIVATE KEY" in text:
        raise ApiError(400, error, "That is a private key. Send the public key (the .pub file) instead.")
    fields = text.split()
    if not text.startswith(("ssh-", "ecdsa-sha2-", "sk-")) or len(fields) < 2 or "\n" in text:
        raise ApiError(400, error, "ssh_key must be an OpenSSH public key such as 'ssh-ed25519 AAAA... me'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        blob = b""
    # The key blob starts with its own algorithm name, length-prefixed: a cheap check that it is a real key.
    if blob[4 : 4 + int.from_bytes(blob[:4], "big")] != fields[0].encode():
        raise ApiError(400, error, f"ssh_key is not a valid {fields[0]} public key")
    return text
