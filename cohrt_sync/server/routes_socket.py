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
    user_id = str(claims.sub)
    # The spec: a new socket re-checks that the tenant and realtime are active.
    core.limiter.check_paused(tenant)
    core.require_realtime(tenant)
    tier = core.limiter.tier_of(tenant)
    share = core.conn_limits.max_tenant_sockets if core.conn_limits else None
    # Before the tenant's request budget: a user over its share spends none of it.
    core.sockets.check_user(tenant.id, user_id, tier, share)
    core.limiter.take(tenant, REQUEST)
    core.sockets.check_tenant(tenant.id, tier, share)
    ws = web.WebSocketResponse(
        heartbeat=core.config.heartbeat,
        # permessage-deflate is declined (RFC 7692 lets a server answer the
        # offer without it): aiohttp inflates on the event loop, back to back
        # for a socket's queued frames, so a few KB on the wire could cost
        # seconds of every tenant's time; and each compressing socket would
        # hold ~200 KiB of zlib state (benchmarks/server_compression.py).
        compress=False,
        # Frames a little over the payload limit get a clear error frame; only
        # absurd ones make aiohttp close the socket (1009).
        max_msg_size=max_frame_bytes(core.config.max_payload),
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(426, "this endpoint expects a WebSocket upgrade (or POST to publish)")
    core.sockets.opened(tenant.id, user_id, tier)
    try:
        await ws.prepare(request)
        conn = Conn(
            ws=ws,
            tenant_id=tenant.id,
            channel=channel,
            user_id=user_id,
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
        core.sockets.closed(tenant.id, user_id)
    return ws


def max_frame_bytes(max_payload: int) -> int:
    """The largest frame the socket reads; a larger one closes it with 1009."""
    return max(4 * max_payload, 1 << 20)


def parsed_frame_chars(max_payload: int) -> int:
    """The longest frame that is parsed; a longer one is refused as too large unread.

    Its data could fit the payload limit only if the frame were mostly
    whitespace or escapes (``\\u00e9`` is 6 characters for 2 bytes), so
    parsing it (tens of milliseconds of the event loop for a megabyte of
    ``[0,0,...]``) would be work spent on a refusal. At least 256 KiB, so a
    small payload limit still gets its exact "too large" answers.
    """
    return max(4 * max_payload + 4096, 256 << 10)


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
    limit = core.config.max_payload
    if len(text) > parsed_frame_chars(limit):
        size = len(text.encode("utf-8", "surrogatepass"))
        _refuse(core, tenant, conn, f"Message too large: {size} bytes (max {limit})")
        return
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
