"""Vast.ai's REST endpoints (``/api/v0``, ``/api/v1``) and the emulator's ``/_emulator/`` controls, as handlers.

Each handler turns one parsed request into calls on the ``World`` and a reply; ``@route`` registers it in ``ROUTES``,
which the server matches requests against.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, invalid_args
from .instance import CreateRequest
from .profiles import schedule
from .query import QueryError, list_instances
from .results import Extras
from .world import World

DEPRECATED_V0_LIST = {
    "success": False,
    "error": "deprecated_endpoint",
    "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.",
}


@dataclass
class Request:
    """One parsed HTTP request, as the route handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    params: dict[str, int] = field(default_factory=dict)
    instance_key_for: int | None = None  # set when authenticated by an instance's restricted key

    def object_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise ApiError(400, "invalid_args", "error 400: the request body must be a JSON object")
        return self.body


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def ok(body: Any = None) -> Reply:
    return Reply(200, {"success": True} if body is None else body)


Handler = Callable[["Routes", Request], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Handler
    auth: bool  # Vast routes need the key; gpu_names and /_emulator/ do not
    instance_key_ok: bool = False  # an instance_api_key may start, stop and destroy its own instance
    anonymous_ok: bool = False  # served without a key (offer search); a key that is sent must still be valid


ROUTES: list[Route] = []


def route(
    method: str, path: str, *, auth: bool = True, instance_key_ok: bool = False, anonymous_ok: bool = False
) -> Callable[[Handler], Handler]:
    """Register a handler; ``{id}`` in ``path`` is an integer parameter; the trailing slash is optional."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>\\d+)", path.rstrip("/"))
    pattern = re.compile(f"^{regex}/?$")

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, pattern, f"{method} {path}", fn, auth, instance_key_ok, anonymous_ok))
        return fn

    return register


class Routes:
    """The handlers, bound to one world; registered by ``@route`` below."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.extras = Extras()  # result texts and snapshot requests (``ops_routes``)

    # -- Vast: account ------------------------------------------------------------------------------------------

    @route("GET", "/api/v0/gpu_names/unique/", auth=False)
    def gpu_names(self, req: Request) -> Reply:
        return ok({"gpu_names": self.world.gpu_names()})

    @route("GET", "/api/v0/users/current/")
    def current_user(self, req: Request) -> Reply:
        return ok(self.world.user())

    @route("GET", "/api/v0/ssh/")
    def account_keys(self, req: Request) -> Reply:
        return ok(self.world.account_keys())

    @route("POST", "/api/v0/ssh/")
    def add_account_key(self, req: Request) -> Reply:
        return ok({"success": True, "key": self.world.add_account_key(req.object_body().get("ssh_key"))})

    @route("DELETE", "/api/v0/ssh/{key_id}/")
    def delete_account_key(self, req: Request) -> Reply:
        self.world.delete_account_key(req.params["key_id"])
        return ok()

    # -- Vast: offers --------------------------------------------------------------------------------------------
    # Vast serves offer search without a key (gpuhunt, dstack's catalog, never sends one).

    @route("POST", "/api/v0/bundles/", anonymous_ok=True)
    def search_post(self, req: Request) -> Reply:
        return ok({"offers": self.world.search(req.object_body())})

    @route("GET", "/api/v0/bundles/", anonymous_ok=True)
    def search_get(self, req: Request) -> Reply:
        try:
            query = json.loads(req.query.get("q") or "{}")
        except json.JSONDecodeError:
            raise ApiError(400, "invalid_args", "error 400: q must be a JSON object") from None
        if not isinstance(query, dict):
            raise ApiError(400, "invalid_args", "error 400: q must be a JSON object")
        return ok({"offers": self.world.search(query)})

    @route("PUT", "/api/v0/search/asks/", anonymous_ok=True)
    def search_asks(self, req: Request) -> Reply:
        body = req.object_body()
        query = body.get("q", {})
        if not isinstance(query, dict):
            raise ApiError(400, "invalid_args", "error 400: q must be a JSON object")
        offers = self.world.search(query)
        cols = body.get("select_cols") or ["*"]
        if isinstance(cols, list) and "*" not in cols:
            offers = [{c: o.get(c) for c in ["id", *cols]} for o in offers]
        return ok({"success": True, "offers": offers})

    # -- Vast: instances -----------------------------------------------------------------------------------------

    @route("PUT", "/api/v0/asks/{offer_id}/")
    def create(self, req: Request) -> Reply:
        return ok(self.world.create(req.params["offer_id"], parse_create(req.object_body())))

    @route("GET", "/api/v0/instances/")
    def v0_list(self, req: Request) -> Reply:
        return Reply(410, DEPRECATED_V0_LIST)

    @route("GET", "/api/v1/instances/")
    def v1_list(self, req: Request) -> Reply:
        try:
            return ok(list_instances(self.world.rows(), req.query))
        except QueryError as exc:
            raise ApiError(400, exc.error, exc.msg) from None

    @route("GET", "/api/v0/instances/filters/")
    def filters(self, req: Request) -> Reply:
        combos = {(r["actual_status"], r["verification"], r["gpu_name"]) for r in self.world.rows()}
        keys = ("actual_status", "verification", "gpu_name")
        return ok({"filters": [dict(zip(keys, c, strict=True)) for c in sorted(combos, key=str)]})

    @route("GET", "/api/v0/instances/{id}/")
    def show(self, req: Request) -> Reply:
        # A destroyed or unknown instance is HTTP 200 {"instances": null}, not a 404.
        return ok({"instances": self.world.show(req.params["id"])})

    @route("PUT", "/api/v0/instances/{id}/", instance_key_ok=True)
    def manage(self, req: Request) -> Reply:
        body = req.object_body()
        instance_id = req.params["id"]
        if "label" in body:
            if req.instance_key_for is not None:
                raise ApiError(401, "auth_error", "Invalid user key")
            label = body["label"]
            if not isinstance(label, str):
                raise invalid_args("label must be a string")
            if len(label) > 1024:
                raise ApiError(400, "label_too_long", "Label is longer than 1024 characters.")
            self.world.set_label(instance_id, label)
        if "state" in body:
            self._set_state(instance_id, body["state"])
        elif "label" not in body:
            raise invalid_args('send {"state": "running"|"stopped"} or {"label": "..."}')
        return ok()

    def _set_state(self, instance_id: int, state: Any) -> None:
        if state == "stopped":
            self.world.stop(instance_id)
        elif state == "running":
            self.world.start(instance_id)
        else:
            raise invalid_args(f'state must be "running" or "stopped", got {state!r}')

    @route("DELETE", "/api/v0/instances/{id}/", instance_key_ok=True)
    def destroy(self, req: Request) -> Reply:
        delay = self.world.faults.destroy_delay
        if delay:
            time.sleep(delay)  # the slow-destroy fault: this request's thread only, outside the world's lock
        self.world.destroy(req.params["id"])
        return ok()

    @route("PUT", "/api/v0/instances/")
    def manage_many(self, req: Request) -> Reply:
        body = req.object_body()
        state = body.get("state")
        if state not in ("running", "stopped"):
            raise invalid_args(f'state must be "running" or "stopped", got {state!r}')
        self.world.set_state_many(_id_list(body, "ids"), state)
        return ok()

    @route("DELETE", "/api/v0/instances/")
    def destroy_many(self, req: Request) -> Reply:
        self.world.destroy_many(_id_list(req.object_body(), "instance_ids"))
        return ok()

    @route("PUT", "/api/v0/instances/reboot/{id}/")
    def reboot(self, req: Request) -> Reply:
        self.world.reboot(req.params["id"])
        return ok()

    @route("GET", "/api/v0/instances/{id}/ssh/")
    def instance_keys(self, req: Request) -> Reply:
        # Vast sends this list as a JSON *string* inside the JSON.
        return ok({"success": True, "ssh_keys": json.dumps(self.world.instance_keys(req.params["id"]))})

    @route("POST", "/api/v0/instances/{id}/ssh/")
    def attach_key(self, req: Request) -> Reply:
        self.world.attach_key(req.params["id"], req.object_body().get("ssh_key"))
        return ok({"success": True, "msg": "SSH key added to instance."})

    @route("DELETE", "/api/v0/instances/{id}/ssh/{key_id}/")
    def detach_key(self, req: Request) -> Reply:
        self.world.detach_key(req.params["id"], req.params["key_id"])
        return ok({"success": True, "msg": "SSH key removed from instance."})

    # -- emulator controls ---------------------------------------------------------------------------------------

    @route("GET", "/_emulator/", auth=False)
    def info(self, req: Request) -> Reply:
        live = self.world.live_ids()
        return ok({"emulator": "pytest-dumont", **self.world.schedule.to_dict(), "live_instances": live})

    @route("GET", "/_emulator/instances/", auth=False)
    def history(self, req: Request) -> Reply:
        return ok({"instances": self.world.history()})

    @route("GET", "/_emulator/ledger/", auth=False)
    def ledger(self, req: Request) -> Reply:
        return ok(self.world.ledger())

    @route("POST", "/_emulator/reset/", auth=False)
    def reset(self, req: Request) -> Reply:
        self.world.reset()
        self.extras.clear()
        return ok()

    @route("GET", "/_emulator/faults/", auth=False)
    def get_faults(self, req: Request) -> Reply:
        return ok(self.world.faults.to_dict())

    @route("POST", "/_emulator/faults/", auth=False)
    def set_faults(self, req: Request) -> Reply:
        try:
            faults = self.world.faults.updated(req.object_body())
        except ValueError as exc:
            raise invalid_args(str(exc)) from None
        self.world.set_faults(faults)
        return ok(faults.to_dict())

    @route("GET", "/_emulator/profile/", auth=False)
    def get_profile(self, req: Request) -> Reply:
        return ok(self.world.schedule.to_dict())

    @route("POST", "/_emulator/profile/", auth=False)
    def set_profile(self, req: Request) -> Reply:
        body = req.object_body()
        current = self.world.schedule
        factor = body.get("time_factor", current.time_factor)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise invalid_args("time_factor must be a number > 0")
        try:
            new = schedule(body.get("profile", current.profile.name), factor)
        except ValueError as exc:
            raise invalid_args(str(exc)) from None
        self.world.set_schedule(new)
        return ok(new.to_dict())

    @route("POST", "/_emulator/instances/{id}/advance/", auth=False)
    def advance(self, req: Request) -> Reply:
        return ok(self.world.advance(req.params["id"]))

    @route("POST", "/_emulator/instances/{id}/status/", auth=False)
    def force_status(self, req: Request) -> Reply:
        body = req.object_body()
        if "actual_status" not in body:
            raise invalid_args("actual_status is required (a status string or null)")
        msg = body.get("status_msg")
        self.world.force_status(req.params["id"], body["actual_status"], None if msg is None else str(msg))
        return ok()

    @route("POST", "/_emulator/instances/{id}/outbid/", auth=False)
    def outbid(self, req: Request) -> Reply:
        min_bid = req.object_body().get("min_bid")
        if min_bid is not None and (isinstance(min_bid, bool) or not isinstance(min_bid, (int, float))):
            raise invalid_args("min_bid must be a number ($/h) or absent")
        return ok(self.world.outbid(req.params["id"], None if min_bid is None else float(min_bid)))

    @route("POST", "/_emulator/instances/{id}/gpu_utilization/", auth=False)
    def gpu_utilization(self, req: Request) -> Reply:
        percent = req.object_body().get("percent")
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
            raise invalid_args("percent must be a number between 0 and 100")
        self.world.set_gpu_utilization(req.params["id"], float(percent))
        return ok()


def _id_list(body: Mapping[str, Any], name: str) -> list[int]:
    ids = body.get(name)
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise invalid_args(f"{name} must be a list of instance ids")
    return ids


def _optional(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if value is not None and ((isinstance(value, bool) and kind is not bool) or not isinstance(value, kind)):
        raise invalid_args(f"{name} has the wrong type: {type(value).__name__}")
    return value


def parse_create(body: Mapping[str, Any]) -> CreateRequest:
    """The create body as the CLI sends it (every key present, most null) -> a checked ``CreateRequest``."""
    env = body.get("env") or {}
    if isinstance(env, str):
        env = {}  # the docs once called env a docker-flag string: Vast accepts one and applies none of it
    if not isinstance(env, dict):
        raise invalid_args('env must be an object such as {"A": "1", "-p 8080:8080": "1"}')
    disk = body.get("disk", 10.0)
    if isinstance(disk, bool) or not isinstance(disk, (int, float)):
        raise invalid_args(f"disk must be a number of GB, got {disk!r}")
    args = _optional(body, "args", list)
    if args is None and isinstance(body.get("args_str"), str):
        args = body["args_str"].split()
    price = _optional(body, "price", (int, float))
    return CreateRequest(
        image=_optional(body, "image", str),
        disk=float(disk),
        label=_optional(body, "label", str),
        runtype=_optional(body, "runtype", str) or "ssh",
        env={str(k): "" if v is None else str(v) for k, v in env.items()},
        onstart=_optional(body, "onstart", str),
        args=args,
        price=None if price is None else float(price),
        template_hash_id=_optional(body, "template_hash_id", str),
    )
