"""The owner's side of node-to-node HTTP: ``/_cluster/publish`` and ``/_cluster/db``.

Only other nodes may call them: a request without the cluster's shared
secret (:data:`.forward.SECRET_HEADER`) gets the same 404 as any unknown
path. A node that does not own the tenant answers 409, and the caller asks
Redis again who does.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from .._json import dumps
from ..backplane import BackplaneDown
from ..core import CORE, Core
from ..errors import ApiError
from ..pending import Pending, PersistError, ShuttingDown
from ..state import Tenant
from .forward import REMOTE_CALLS, SECRET_HEADER, error_name
from .plane import RedisBackplane


def _owner_side(request: web.Request) -> Tuple[Core, RedisBackplane]:
    core = request.app[CORE]
    plane = core.backplane
    sent = request.headers.get(SECRET_HEADER, "")
    if not isinstance(plane, RedisBackplane) or not hmac.compare_digest(
        sent.encode("utf-8", "surrogateescape"), plane.secret.encode()
    ):
        raise ApiError(404, f"no route {request.path}")
    return core, plane


async def _tenant(core: Core, plane: RedisBackplane, body: Any) -> Tenant:
    tenant_id = body.get("tenant") if isinstance(body, dict) else None
    if not isinstance(tenant_id, str):
        raise ApiError(400, '"tenant" is required')
    tenant = core.state.tenants.get(tenant_id) or core.state.reload(tenant_id)
    if tenant is None:
        raise ApiError(404, "no such tenant")
    if not await plane.sequences_here(tenant_id):
        raise ApiError(409, "this node does not own the tenant")
    return tenant


async def publish(request: web.Request) -> web.Response:
    """Sequence publishes another node received, answer each in order."""
    core, plane = _owner_side(request)
    body = await request.json()
    tenant = await _tenant(core, plane, body)
    items = body.get("items")
    if not isinstance(items, list):
        raise ApiError(400, '"items" must be a list')
    waits: List[Tuple[Optional[Pending], asyncio.Future[Dict[str, Any]], Optional[str]]] = []
    loop = asyncio.get_running_loop()
    for item in items:
        key: Optional[str] = item.get("k")
        if key:
            seen, fut = core.remembered(tenant, key)
            if not seen:
                stored = await core.stored_ack(tenant, key)
                if stored is not None:
                    fut.set_result(stored)
                    seen = True
            if seen:
                waits.append((None, fut, None))
                continue
        else:
            fut = loop.create_future()
        reply = item.get("r")
        p = Pending(
            item["c"],
            item["e"],
            item["d"],
            bool(item["p"]),
            int(item["t"]),
            future=fut,
            error=item.get("x"),
            idempotency_key=key if item["p"] else None,
            counts=tuple(item.get("n") or ()),
            reply_to=(str(reply[0]), int(reply[1])) if reply else None,
        )
        try:
            core.hub.submit(tenant.id, p)
        except ShuttingDown:
            fut.set_exception(BackplaneDown("the owner node is shutting down; retry"))
        waits.append((p, fut, key))
    results: List[Any] = []
    for sent, fut, key in waits:
        try:
            result = await asyncio.shield(fut)
        except (PersistError, ApiError) as e:
            if key:
                core.forget(tenant, key)
            code = e.code if isinstance(e, ApiError) else 500
            message = e.message if isinstance(e, ApiError) else str(e)
            results.append([False, {"message": message, "code": code}])
            continue
        ack = sent.ack if sent is not None else None
        results.append([True, {"result": result, "ack": ack, "id": result.get("id")}])
    return web.json_response({"results": results}, dumps=dumps)


async def database(request: web.Request) -> web.Response:
    """Run one database call for a non-owner (history, direct SQL, idempotency look-ups)."""
    core, plane = _owner_side(request)
    body = await request.json()
    tenant = await _tenant(core, plane, body)
    op, args = body.get("op"), body.get("args")
    if op not in REMOTE_CALLS or not isinstance(args, list):
        raise ApiError(400, "unknown database call")
    db = await core.local_db(tenant.id)
    if db is None:
        return web.json_response({"ok": None}, dumps=dumps)
    try:
        result = await db.call(getattr(db, op), *args)
    except Exception as e:  # named for the caller, who raises the same kind
        return web.json_response({"error": error_name(e), "message": str(e)}, dumps=dumps)
    if isinstance(result, bytes):
        return web.json_response({"bytes": base64.b64encode(result).decode()}, dumps=dumps)
    return web.json_response({"ok": result}, dumps=dumps)


def add_routes(router: web.UrlDispatcher) -> None:
    """Add the node-to-node routes to ``router``."""
    router.add_post("/_cluster/publish", publish)
    router.add_post("/_cluster/db", database)


__all__ = ["add_routes"]
