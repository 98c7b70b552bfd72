"""The realtime WebSocket, ``GET /edge/realtime``: its handshake, and each
inbound frame checked and queued as a publish (or answered with an error)."""

from __future__ import annotations

from aiohttp import web

from . import tokens
from ._json import dumps, parse_json
from .core import CORE, Core
from .errors import ApiError
from .hub import Conn, Pending, ShuttingDown
from .limits import PUBLISH, REQUEST
from .state import Tenant
from .validators import check_channel, check_event, check_persist, encode_data


async def realtime_socket(request: web.Request) -> web.StreamResponse:
    """``GET /edge/realtime?token=&channel=``: one channel's WebSocket."""
    core = request.app[CORE]
    token = request.query.get("token")
    if not token:
        raise ApiError(401, 'missing "token" query parameter: mint one at /edge/realtime/token')
    channel = check_channel(request.query.get("channel"))
    tenant, claims = core.verify_token(token, tokens.REALTIME)
    # The spec: a new socket re-checks that the tenant and realtime are active.
    core.limiter.check_paused(tenant)
    core.require_realtime(tenant)
    core.limiter.take(tenant, REQUEST)
    cap = core.limiter.sockets_cap(tenant)
    where = f"on the {core.limiter.tier_of(tenant).name} tier"
    share = core.conn_limits.max_tenant_sockets if core.conn_limits else None
    if share is not None and (cap is None or share < cap):
        # One tenant must not hold every connection slot of the server.
        cap, where = share, "per tenant (max_tenant_sockets)"
    if cap is not None and core.hub.sockets_per_tenant[tenant.id] >= cap:
        raise ApiError(429, f"socket cap reached: {cap} concurrent sockets {where}", retry_after=5)
    ws = web.WebSocketResponse(
        heartbeat=core.config.heartbeat,
        # Frames a little over the payload limit get a clear error frame; only
        # absurd ones make aiohttp close the socket (1009).
        max_msg_size=max(4 * core.config.max_payload, 1 << 20),
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(426, "this endpoint expects a WebSocket upgrade (or POST to publish)")
    core.hub.sockets_per_tenant[tenant.id] += 1
    try:
        await ws.prepare(request)
        conn = Conn(
            ws=ws,
            tenant_id=tenant.id,
            channel=channel,
            user_id=str(claims.sub),
            name=claims.name,
            transport=request.transport,
        )
        await core.hub.open(conn)
        try:
            async for msg in ws:
                if msg.type == web.WSMsgType.TEXT:
                    _on_frame(core, tenant, conn, msg.data)
                elif msg.type == web.WSMsgType.BINARY:
                    try:
                        text = msg.data.decode("utf-8")
                    except UnicodeDecodeError:
                        _refuse(core, tenant, conn, "Invalid JSON")
                    else:
                        _on_frame(core, tenant, conn, text)
        finally:
            await core.hub.close(conn, core.now())
    finally:
        core.hub.sockets_per_tenant[tenant.id] -= 1
    return ws


def _refuse(core: Core, tenant: Tenant, conn: Conn, message: str) -> None:
    # Refusals wait their turn behind earlier publishes so that every frame a
    # client sends is answered in order.
    _submit(core, tenant, Pending(conn.channel, "", "", False, 0, sender=conn, error=message))


def _submit(core: Core, tenant: Tenant, pending: Pending) -> None:
    try:
        core.hub.submit(tenant.id, pending)
    except ShuttingDown:
        # The socket is being closed with 1001; the client resends after it
        # reconnects, as for any publish left without an ack.
        pass


def _on_frame(core: Core, tenant: Tenant, conn: Conn, text: str) -> None:
    try:
        msg = parse_json(text)
    except ValueError:
        _refuse(core, tenant, conn, "Invalid JSON")
        return
    action = msg.get("action") if isinstance(msg, dict) else None
    if action != "publish":
        if action is None:
            shown = "undefined"
        else:
            shown = action if isinstance(action, str) else dumps(action)
        _refuse(core, tenant, conn, f'Unknown action: "{shown}". Use: publish')
        return
    assert isinstance(msg, dict)
    if "data" not in msg:
        _refuse(core, tenant, conn, 'publish requires "data"')
        return
    try:
        event = check_event(msg.get("event"))
        persist = check_persist(msg.get("persist"))
        data_json = encode_data(core, msg["data"])
        core.limiter.check_paused(tenant)
        counts = core.usage.reserve_with_rows(tenant, PUBLISH)
    except ApiError as e:
        _refuse(core, tenant, conn, e.message)
        return
    _submit(
        core,
        tenant,
        Pending(
            conn.channel, event, data_json, persist, core.now_ms(), sender=conn, counts=counts
        ),
    )


def add_routes(router: web.UrlDispatcher) -> None:
    """Add the socket's route to ``router``."""
    router.add_get("/edge/realtime", realtime_socket, allow_head=False)
