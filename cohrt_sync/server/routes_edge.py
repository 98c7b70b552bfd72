"""The edge HTTP routes: session bearers, socket tokens, publishing without a
socket, history and direct SQL."""

from __future__ import annotations

import asyncio
import sqlite3

from aiohttp import web

from . import tokens
from ._json import dumps
from .core import CORE
from .directsql import DatabaseFull, SqlOutOfTime, SqlTooLarge, check_statement
from .errors import ApiError
from .hub import Pending, PersistError, ShuttingDown
from .limits import HISTORY, MINT, PUBLISH, REQUEST
from .sqlpolicy import SqlRefused
from .validators import (
    check_channel,
    check_event,
    check_persist,
    encode_data,
    int_param,
    read_object,
)

MAX_USER_ID = 256
MAX_NAME = 256
DEFAULT_TTL = 300
NO_STORE = {"Cache-Control": "private, no-store, max-age=0"}


async def edge_session(request: web.Request) -> web.Response:
    """``POST /edge/session?key=``: a short-lived edge bearer token."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    core.limiter.check_paused(tenant)
    core.limiter.take(tenant, REQUEST)
    ttl = core.config.session_ttl
    token = tokens.mint(tenant.secret, tenant=tenant.id, typ=tokens.EDGE, now=core.now(), ttl=ttl)
    return web.json_response(
        {"token": token, "token_type": "Bearer", "expires_in": ttl}, headers=NO_STORE, dumps=dumps
    )


async def mint_token(request: web.Request) -> web.Response:
    """``POST /edge/realtime/token``: a WebSocket connection token for one user."""
    core = request.app[CORE]
    tenant = core.edge_tenant(request)
    core.require_realtime(tenant)
    body = await read_object(request)
    user_id = body.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int, float)):
        raise ApiError(400, '"user_id" is required and must be a string or a number')
    if isinstance(user_id, float):
        if not user_id.is_integer():
            raise ApiError(400, '"user_id" must be a string or an integer')
        user_id = int(user_id)
    uid = str(user_id)
    if not uid or len(uid) > MAX_USER_ID:
        raise ApiError(400, f'"user_id" must be 1 to {MAX_USER_ID} characters')
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise ApiError(400, f'"name" must be a string of at most {MAX_NAME} characters')
    ttl = body.get("ttl", DEFAULT_TTL)
    if ttl is None:
        ttl = DEFAULT_TTL
    if isinstance(ttl, float) and ttl.is_integer():
        ttl = int(ttl)  # JSON has one number type: 300.0 is 300, as for user_id
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 3600:
        raise ApiError(400, '"ttl" must be an integer number of seconds from 60 to 3600')
    await core.usage.charge(tenant, MINT)
    token = tokens.mint(
        tenant.secret,
        tenant=tenant.id,
        typ=tokens.REALTIME,
        now=core.now(),
        ttl=ttl,
        sub=uid,
        name=name,
    )
    return web.json_response({"token": token, "expires_in": ttl}, headers=NO_STORE, dumps=dumps)

# -- edge: HTTP publish, history, SQL --------------------------------------------------
async def http_publish(request: web.Request) -> web.Response:
    """``POST /edge/realtime``: publish without a socket; honours ``Idempotency-Key``."""
    core = request.app[CORE]
    tenant = core.edge_tenant(request)
    core.require_realtime(tenant)
    body = await read_object(request)
    channel = check_channel(body.get("channel"))
    if "data" not in body:
        raise ApiError(400, 'publish requires "data"')
    event = check_event(body.get("event"))
    persist = check_persist(body.get("persist"))
    data_json = encode_data(core, body["data"])
    idem_key = request.headers.get("Idempotency-Key")
    if idem_key is not None and not 0 < len(idem_key) <= 256:
        raise ApiError(400, "Idempotency-Key must be 1 to 256 characters")
    if idem_key:
        seen, fut = core.remembered(tenant, idem_key)
        if not seen:
            # Not in memory: perhaps published before a restart.
            try:
                stored = await core.stored_ack(tenant, idem_key)
            except BaseException:
                # Unanswered (a cluster's owner out of reach): a retry looks again.
                core.forget(tenant, idem_key)
                raise
            if stored is not None:
                fut.set_result(stored)
                seen = True
        if seen:
            try:
                result = await asyncio.shield(fut)
            except PersistError as e:
                raise ApiError(500, str(e)) from None
            except ApiError:
                # Refused, not failed (a 503 while a cluster's owner changes):
                # nothing was published, so a retry publishes anew.
                core.forget(tenant, idem_key)
                raise
            return web.json_response(result, headers={"Idempotent-Replayed": "true"}, dumps=dumps)
    else:
        fut = asyncio.get_running_loop().create_future()
    try:
        counts = core.usage.reserve_with_rows(tenant, PUBLISH)
    except ApiError:
        if idem_key:
            core.forget(tenant, idem_key)
        raise
    try:
        core.hub.submit(
            tenant.id,
            Pending(
                channel,
                event,
                data_json,
                persist,
                core.now_ms(),
                future=fut,
                idempotency_key=idem_key if persist else None,
                counts=counts,
            ),
        )
    except ShuttingDown:
        if idem_key:
            core.forget(tenant, idem_key)
        raise ApiError(
            503, "the server is shutting down; nothing was published", retry_after=1
        ) from None
    try:
        result = await asyncio.shield(fut)
    except (PersistError, ApiError) as e:
        if idem_key:
            core.forget(tenant, idem_key)
        if isinstance(e, ApiError):
            raise
        raise ApiError(500, str(e)) from None
    return web.json_response(result, dumps=dumps)


async def history(request: web.Request) -> web.Response:
    """``GET /edge/realtime/history?channel=&after=&limit=``: persisted messages."""
    core = request.app[CORE]
    tenant = core.edge_tenant(request)
    core.require_realtime(tenant)
    channel = check_channel(request.query.get("channel"))
    after = int_param(request, "after", 0, 0, None)
    limit = int_param(request, "limit", 50, 1, 100)
    await core.usage.charge(tenant, HISTORY)
    db = await core.require_db(tenant)
    try:
        messages = await db.call(db.history, channel, after, limit)
    except sqlite3.Error as e:
        raise ApiError(500, f"history read failed: {e}") from None
    return web.json_response({"messages": messages}, dumps=dumps)


async def direct_sql(request: web.Request) -> web.Response:
    """``POST /edge/database``: one SQL statement on the tenant's own database."""
    core = request.app[CORE]
    tenant = core.edge_tenant(request)
    body = await read_object(request)
    query = body.get("query", body.get("sql"))
    if not isinstance(query, str) or not query.strip():
        raise ApiError(400, '"query" is required and must be a non-empty string')
    params = body.get("params", [])
    if params is None:
        params = []
    if not isinstance(params, list) or any(isinstance(p, (dict, list)) for p in params):
        raise ApiError(400, '"params" must be an array of strings, numbers, booleans or nulls')
    db = await core.require_db(tenant)
    try:
        check_statement(query, params, db.limits)
        # The answer's JSON is built on the tenant's thread, within the time limit.
        answer = await db.call(db.execute_sql, query, params)
    except SqlRefused as e:
        raise ApiError(403, f"query refused: {e}", status="PERMISSION_DENIED") from None
    except SqlOutOfTime as e:
        # The query is what to change (as with an SQL error), not the caller's rights.
        raise ApiError(400, str(e)) from None
    except SqlTooLarge as e:
        raise ApiError(413, str(e)) from None
    except DatabaseFull as e:
        raise ApiError(413, str(e), status="RESOURCE_EXHAUSTED") from None
    except (sqlite3.Error, OverflowError, UnicodeError) as e:
        raise ApiError(400, f"SQL error: {e}") from None
    except ValueError as e:  # too many params; before 3.11 also sqlite3's answer to a NUL
        raise ApiError(400, str(e)) from None
    return web.Response(body=answer, content_type="application/json", charset="utf-8")


def add_routes(router: web.UrlDispatcher) -> None:
    """Add the edge HTTP routes to ``router`` (the socket's GET is in :mod:`.routes_socket`)."""
    router.add_post("/edge/session", edge_session)
    router.add_post("/edge/realtime/token", mint_token)
    router.add_post("/edge/realtime", http_publish)
    router.add_get("/edge/realtime/history", history, allow_head=False)
    router.add_post("/edge/database", direct_sql)
