"""Vast endpoints beyond the lifecycle: instance logs, execute, snapshots, charges and invoices, result texts.

Registered into ``routes.ROUTES`` on import (``api`` imports this module). ``request_logs`` and ``command`` answer
with a ``result_url`` the client GETs without a key, as it would an object store link.
"""

from __future__ import annotations

import time

from . import billing, copying, instance_ops
from .errors import ApiError, invalid_args
from .results import RESULTS_PATH
from .routes import Reply, Request, Routes, ok, route

TEXT = "text/plain; charset=utf-8"


@route("PUT", "/api/v0/instances/request_logs/{id}/")
def request_logs(routes: Routes, req: Request) -> Reply:
    instance_id = req.params["id"]
    host = routes.world.host(instance_id)  # 404 no_such_instance once destroyed
    body = req.object_body()
    if str(body.get("daemon_logs", "")).lower() == "true":
        entry = next(e for e in routes.world.history() if e["id"] == instance_id)
        text = instance_ops.daemon_log(entry["transitions"])
    else:
        text = instance_ops.container_log(host)
    url = routes.extras.publish(instance_ops.select_lines(text, body))
    return ok({"success": True, "msg": "Logs requested; fetch them from result_url.", "result_url": url})


@route("PUT", "/api/v0/instances/command/{id}/")
def execute(routes: Routes, req: Request) -> Reply:
    host = routes.world.host(req.params["id"])
    output, writeable_path = instance_ops.run_command(host, req.object_body().get("command"))
    url = routes.extras.publish(output)
    return ok({"success": True, "result_url": url, "writeable_path": writeable_path})


@route("POST", "/api/v0/instances/take_snapshot/{id}/")
def take_snapshot(routes: Routes, req: Request) -> Reply:
    instance_id = req.params["id"]
    routes.world.host(instance_id)
    body = req.object_body()
    repo = body.get("personal_repo")
    if not isinstance(repo, str) or not repo:
        raise invalid_args("personal_repo (the CLI's --repo) is required")
    routes.extras.record_snapshot(
        {
            "instance_id": instance_id,
            "container_registry": body.get("container_registry") or "docker.io",
            "personal_repo": repo,
            "docker_login_user": body.get("docker_login_user"),
            "pause": str(body.get("pause", "true")).lower() == "true",
            "tag": f"instance_{instance_id}_at_{int(time.time())}",
            "requested_at": time.time(),
            # the registry password is never kept: nothing is pushed anywhere
        }
    )
    return ok({"success": True, "msg": "Snapshot request sent."})


@route("PUT", "/api/v0/commands/copy_direct/")
def copy_direct(routes: Routes, req: Request) -> Reply:
    body = req.object_body()
    if copying.is_local(body.get("src_id")) or copying.is_local(body.get("dst_id")):
        return local_copy(routes, req)  # `local:path` reaches here (the CLI sends rsync only for a bare path)
    src_id = copying.instance_id_of(body.get("src_id"), "src_id")
    dst_id = copying.instance_id_of(body.get("dst_id"), "dst_id")
    src, dst = routes.world.host(src_id), routes.world.host(dst_id)
    copying.copy_direct(src, body.get("src_path"), dst, body.get("dst_path"))
    msg = "Remote to Remote copy initiated - check instance status bar for progress updates (~30 seconds delayed)."
    return ok({"success": True, "msg": msg})


@route("PUT", "/api/v0/commands/rsync/")
def local_copy(routes: Routes, req: Request) -> Reply:
    """A copy between a local path and an instance: the answer says where the client's rsync connects."""
    body = req.object_body()
    upload, download = copying.is_local(body.get("src_id")), copying.is_local(body.get("dst_id"))
    if upload == download:
        raise invalid_args("a copy to or from a local path has exactly one local side (src_id or dst_id)")
    role = "dst" if upload else "src"
    instance_id = copying.instance_id_of(body.get(f"{role}_id"), f"{role}_id")
    endpoint = copying.local_copy_endpoint(routes.world.host(instance_id), body.get(f"{role}_path"), role)
    return ok({"success": True, "msg": "Connect with rsync to copy.", **endpoint})


@route("GET", "/api/v0/charges/")
def charges(routes: Routes, req: Request) -> Reply:
    t0, t1 = billing.window(req.query, "day")
    items = billing.instance_charges(routes.world.history(), time.time())
    return ok(billing.page(items, req.query, t0, t1))


@route("GET", "/api/v1/invoices/")
def invoices(routes: Routes, req: Request) -> Reply:
    t0, t1 = billing.window(req.query, "when")
    credit = billing.initial_credit(_starting_credit(routes), routes.extras.started_at)
    return ok(billing.page([credit], req.query, t0, t1))


@route("GET", "/api/v0/users/me/invoices/")
def legacy_invoices(routes: Routes, req: Request) -> Reply:
    try:
        t0 = float(req.query.get("sdate") or 0)
        t1 = float(req.query.get("edate") or time.time())
    except ValueError:
        raise invalid_args("sdate and edate must be timestamps") from None
    inc_charges = req.query.get("inc_charges", "true").lower() == "true"
    items = billing.instance_charges(routes.world.history(), time.time())
    started = routes.extras.started_at
    return ok(billing.legacy_invoices(items, _starting_credit(routes), started, t0, t1, inc_charges))


def _starting_credit(routes: Routes) -> float:
    user = routes.world.user()
    return round(float(user["credit"]) + float(routes.world.ledger()["total_cost"]), 2)


@route("GET", RESULTS_PATH + "{token}", auth=False)
def result_text(routes: Routes, req: Request) -> Reply:
    text = routes.extras.text(req.params["token"])
    if text is None:
        raise ApiError(404, "not_found", "No such result.")
    return Reply(200, text.encode(), {"Content-Type": TEXT})


@route("GET", "/_emulator/snapshots/", auth=False)
def snapshots(routes: Routes, req: Request) -> Reply:
    return ok({"snapshots": routes.extras.snapshots()})
