"""The aiohttp application: every HTTP and WebSocket endpoint of the edge API."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple

import attrs
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from .._redact import Redactor
from . import tokens
from ._json import dumps, parse_json
from .connguard import ConnLimits, read_body
from .directsql import DatabaseFull, SqlLimits, SqlTooLarge, check_statement
from .errors import ApiError, error_response
from .hub import Conn, Hub, Pending, PersistError, ShuttingDown
from .limits import HISTORY, MINT, PUBLISH, REQUEST, Limiter
from .logfilter import learn_keys, redact
from .openapi import PATH as OPENAPI_PATH
from .openapi import serve_document
from .sqlpolicy import SqlRefused
from .state import StateStore, Tenant
from .tenantdb import IDEMPOTENCY_MAX, IDEMPOTENCY_TTL_S, TenantDB

log = logging.getLogger("cohrt_sync.server")

#: ``write_region`` aliases of the spec → D1 regions.
REGION_ALIASES = {
    "us-west": "wnam",
    "us": "enam",
    "eu": "weur",
    "eu-east": "eeur",
    "apac": "apac",
    "australia": "oc",
}
REGIONS = frozenset({"wnam", "enam", "weur", "eeur", "apac", "oc"})
DEFAULT_REGION = "apac"

#: Larger integers can't be bound to an SQLite parameter.
SQLITE_MAX_INT = 2**63 - 1
MAX_CHANNEL = 256
MAX_EVENT = 128
MAX_USER_ID = 256
MAX_NAME = 256
DEFAULT_TTL = 300
NO_STORE = {"Cache-Control": "private, no-store, max-age=0"}
#: Verified edge session bearers remembered (each lives a minute).
SESSION_CACHE_MAX = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@attrs.define
class Config:
    """Settings of one server; :class:`~cohrt_sync.server.LocalServer` takes the same names."""

    keys: List[str] = attrs.field(factory=list, repr=False)
    provision: bool = False
    data_dir: Optional[Path] = None
    tier: str = "unlimited"
    max_payload: int = 65536
    session_ttl: int = 60
    live_ids: bool = True
    batch_commits: bool = True
    heartbeat: float = 25.0
    rtk_delay_ms: int = 300
    # Tenant database quota and direct-SQL bounds (see directsql.SqlLimits).
    max_db_size: int = 500_000_000
    sql_time_limit: float = 5.0
    sql_max_value: int = 2_000_000
    sql_max_length: int = 100_000
    sql_max_params: int = 100
    sql_max_rows: int = 100_000
    sql_max_result_bytes: int = 16 * 1024 * 1024

    # Connections and slow peers (connguard.py, outbox.py); 0 means automatic.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 30.0
    send_timeout: float = 60.0
    max_connections: int = 0
    max_tenant_sockets: int = 0
    socket_queue_bytes: int = 4 << 20
    total_queue_bytes: int = 128 << 20

    def sql_limits(self) -> SqlLimits:
        """The tenant database limits these settings name (validated)."""
        return SqlLimits(
            max_db_size=self.max_db_size,
            time_limit=self.sql_time_limit,
            max_value=self.sql_max_value,
            max_sql_length=self.sql_max_length,
            max_params=self.sql_max_params,
            max_rows=self.sql_max_rows,
            max_result_bytes=self.sql_max_result_bytes,
        )


class Core:
    """Everything the handlers share: state, databases, sockets, limits, clock.

    :param config: the server's settings.
    :param data_dir: where ``server.sqlite3`` and the tenant databases live.
    """

    def __init__(self, config: Config, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.clock_offset = 0.0
        #: The keys this server knows, kept out of its logs (see logfilter).
        self.redactor = Redactor(config.keys)
        self.state = StateStore(data_dir / "server.sqlite3")
        self.limiter = Limiter(config.tier, self.now)
        self.hub = Hub(
            self.db_for,
            live_ids=config.live_ids,
            batch_commits=config.batch_commits,
            socket_queue_bytes=config.socket_queue_bytes,
            total_queue_bytes=config.total_queue_bytes,
        )
        #: Set by the runner from the fd limit (see connguard.resolve_limits).
        self.conn_limits: Optional[ConnLimits] = None
        self.dbs: Dict[str, TenantDB] = {}
        self.sql_limits = config.sql_limits()
        self._idempotency: Dict[
            str, collections.OrderedDict[str, Tuple[float, asyncio.Future[Dict[str, Any]]]]
        ] = {}
        #: Called with the tenant when its realtime resource is deleted
        #: (RealtimeKit removes the tenant's app there).
        self.on_realtime_deleted: List[Callable[[Tenant], Awaitable[None]]] = []
        self._flusher: Optional[asyncio.Task[None]] = None
        #: Verified edge session bearers: token → (tenant id, expiry).
        self._sessions: collections.OrderedDict[str, Tuple[str, int]] = collections.OrderedDict()
        #: Handlers waiting for their request body (see :meth:`shutdown`).
        self.body_readers: Set[asyncio.Task[Any]] = set()
        for key in config.keys:
            tenant = self.state.add_key(key)
            if config.provision and not tenant.realtime:
                tenant.realtime = tenant.database = True
                tenant.write_region = tenant.write_region or DEFAULT_REGION
                tenant.paused = False
        # Before serving, so a synchronous write blocks nobody.
        self.state.save_all_now()

    def now(self) -> float:
        """The server's clock: wall time plus what tests advanced it by."""
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        """:meth:`now` in integer milliseconds."""
        return int(self.now() * 1000)

    # -- lifecycle ------------------------------------------------------------
    async def startup(self) -> None:
        """Open provisioned databases and start flushing usage counters."""
        for tenant in self.state.all():
            if tenant.realtime:
                db = await self.db_for(tenant.id)
                if db is not None:
                    await db.call(db.ensure_schema)
        self._flusher = asyncio.ensure_future(self._flush_counters())

    async def _flush_counters(self) -> None:
        while True:
            await asyncio.sleep(2)
            dirty = list(self.limiter.dirty.values())
            self.limiter.dirty.clear()
            for tenant in dirty:
                await self.state.save(tenant)

    async def shutdown(self) -> None:
        """Close sockets gracefully, finish queued publishes, close databases."""
        # Publishes already queued are finished; later ones are refused.
        await self.hub.drain()
        # Once shutdown begins aiohttp stops feeding request bodies, so a
        # handler still waiting for its body would wait out the whole grace
        # period; nothing of it has been acted on, so cut it now.
        for task in list(self.body_readers):
            task.cancel()
        await asyncio.gather(
            *(_close_quietly(c, 1001, "server shutting down") for c in self.hub.conns())
        )
        if self._flusher is not None:
            self._flusher.cancel()
        loop = asyncio.get_running_loop()
        for db in list(self.dbs.values()):
            await loop.run_in_executor(None, db.close)
        self.dbs.clear()
        await loop.run_in_executor(None, self.state.close)

    async def db_for(self, tenant_id: str) -> Optional[TenantDB]:
        """The tenant's database, opened on first use; None if not provisioned."""
        db = self.dbs.get(tenant_id)
        if db is not None:
            return db
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None or not tenant.database:
            return None
        db = TenantDB(
            self.data_dir / "tenants" / f"{tenant_id}.sqlite3",
            "cohrt-sync-db",
            self.sql_limits,
            # Room for a maximal message plus its channel, event and record.
            max_row=self.config.max_payload + 4096,
        )
        self.dbs[tenant_id] = db
        return db

    # -- auth -----------------------------------------------------------------
    def tenant_by_key(
        self,
        request: web.Request,
        missing: str = "missing application key: send Authorization: Bearer <key>",
    ) -> Tenant:
        """The tenant of the application key in ``Authorization: Bearer`` or ``?key=``.

        :param missing: the 401's message when no key was sent.
        """
        key = _bearer(request) or request.query.get("key")
        if not key:
            raise ApiError(401, missing)
        tenant = self.state.by_key(key)
        if tenant is None:
            raise ApiError(401, "invalid application key")
        # A key of an earlier run is stored only as a digest: learn it on first use.
        self.redactor.add(key)
        return tenant

    def edge_tenant(self, request: web.Request) -> Tenant:
        """Authenticate an edge call (edge session bearer, raw key bearer, or ``?key=``)."""
        bearer = _bearer(request)
        if bearer and bearer.count(".") == 2:
            tenant = self._edge_session(bearer)
        else:
            tenant = self.tenant_by_key(
                request,
                missing="missing credentials: send Authorization: Bearer <edge session token>"
                " or ?key=",
            )
        self.limiter.check_paused(tenant)
        self.limiter.take(tenant, REQUEST)
        return tenant

    def verify_token(self, token: str, typ: str) -> Tuple[Tenant, tokens.Claims]:
        """The tenant and claims of a signed token of kind ``typ``, or a 401."""
        try:
            tenant_id = tokens.unverified_tenant(token)
            tenant = self.state.tenants.get(tenant_id)
            if tenant is None:
                raise tokens.TokenError("unknown tenant")
            claims = tokens.verify(token, tenant.secret, typ=typ, now=self.now())
        except tokens.TokenError as e:
            raise ApiError(401, f"invalid or expired token: {e}") from None
        return tenant, claims

    def _edge_session(self, token: str) -> Tenant:
        # A session bearer is reused for every call of its minute: remember the
        # verified ones so each call costs a lookup, not three JWT decodes.
        hit = self._sessions.get(token)
        if hit is not None and hit[1] > self.now():
            tenant = self.state.tenants.get(hit[0])
            if tenant is not None:
                return tenant
        tenant, claims = self.verify_token(token, tokens.EDGE)
        self._sessions[token] = (tenant.id, claims.exp)
        while len(self._sessions) > SESSION_CACHE_MAX:
            self._sessions.popitem(last=False)
        return tenant

    def require_realtime(self, tenant: Tenant) -> None:
        """Refuse edge realtime calls until the resource is provisioned."""
        if not tenant.realtime:
            raise ApiError(
                403,
                "realtime is not provisioned for this tenant: POST /api/resources/realtime first",
            )

    async def require_db(self, tenant: Tenant) -> TenantDB:
        """The tenant's database, or 403 if it has none."""
        db = await self.db_for(tenant.id)
        if db is None:
            raise ApiError(
                403, "database is not provisioned for this tenant: provision realtime first"
            )
        return db

    # -- idempotent publishing --------------------------------------------------
    def remembered(self, tenant: Tenant, key: str) -> Tuple[bool, asyncio.Future[Dict[str, Any]]]:
        """(seen before, its future) for an ``Idempotency-Key``."""
        table = self._idempotency.setdefault(tenant.id, collections.OrderedDict())
        now = self.now()
        while table:
            oldest_key, (created, _) = next(iter(table.items()))
            if created > now - IDEMPOTENCY_TTL_S and len(table) < IDEMPOTENCY_MAX:
                break
            del table[oldest_key]
        entry = table.get(key)
        if entry is not None:
            return True, entry[1]
        fut: asyncio.Future[Dict[str, Any]] = asyncio.get_running_loop().create_future()
        table[key] = (now, fut)
        return False, fut

    def forget(self, tenant: Tenant, key: str) -> None:
        """Drop a key whose publish failed, so a retry may try again."""
        self._idempotency.get(tenant.id, {}).pop(key, None)  # type: ignore[call-overload]

    async def stored_ack(self, tenant: Tenant, key: str) -> Optional[Dict[str, Any]]:
        """The ack of a persisted publish with ``key`` stored before a restart, if any."""
        db = await self.db_for(tenant.id)
        if db is None:
            return None
        not_before = self.now_ms() - IDEMPOTENCY_TTL_S * 1000
        try:
            return await db.call(db.find_idempotent, key, not_before)
        except sqlite3.Error:
            # No table (realtime deleted, or not yet provisioned): nothing stored.
            return None


CORE: web.AppKey[Core] = web.AppKey("core", Core)


def _bearer(request: web.Request) -> Optional[str]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        value = value.strip()
        try:
            # aiohttp hands over bytes that are not UTF-8 as lone surrogates,
            # which no key or token can hold (and hashing them would raise).
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(401, "invalid credentials: the bearer token is not UTF-8") from None
        return value
    return None


async def _close_quietly(conn: Conn, code: int, reason: str) -> None:
    try:
        await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()), timeout=2)
    except (asyncio.TimeoutError, ConnectionError, RuntimeError):
        conn.abort()


# -- input checks ---------------------------------------------------------------
async def read_object(request: web.Request) -> Dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    readers = request.app[CORE].body_readers
    task = asyncio.current_task()
    if task is not None:
        readers.add(task)
    try:
        raw = await read_body(request, request.app[CORE].config.body_timeout)
    finally:
        readers.discard(task)
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def check_channel(channel: Any) -> str:
    """A channel name: a non-empty string of at most 256 characters, no controls."""
    if not isinstance(channel, str) or not channel:
        raise ApiError(400, '"channel" is required and must be a non-empty string')
    if len(channel) > MAX_CHANNEL:
        raise ApiError(400, f'"channel" is longer than {MAX_CHANNEL} characters')
    if _CONTROL.search(channel):
        raise ApiError(400, '"channel" must not contain control characters')
    return channel


def check_event(event: Any) -> str:
    """An event name; missing or null means ``message``."""
    if event is None:
        return "message"
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT:
        raise ApiError(400, f'"event" must be a non-empty string of at most {MAX_EVENT} characters')
    return event


def check_persist(persist: Any) -> bool:
    """``persist`` defaults to true and must be a boolean."""
    if persist is None:
        return True
    if not isinstance(persist, bool):
        raise ApiError(400, '"persist" must be a boolean')
    return persist


def encode_data(core: Core, data: Any) -> str:
    """``data`` as compact JSON, refused if over the payload limit."""
    try:
        text = dumps(data)
    except (RecursionError, ValueError):
        raise ApiError(400, '"data" is not encodable JSON') from None
    limit = core.config.max_payload
    # A character is 1 to 4 bytes of UTF-8: most messages are settled by
    # their length alone, without encoding them.
    if 4 * len(text) <= limit:
        return text
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ApiError(413, f"Message too large: {size} bytes (max {limit})")
    return text


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: Optional[int]) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f'"{name}" must be an integer') from None
    if value < lo:
        raise ApiError(400, f'"{name}" must be at least {lo}')
    if value > SQLITE_MAX_INT:
        raise ApiError(400, f'"{name}" must be at most {SQLITE_MAX_INT}')
    return min(value, hi) if hi is not None else value


# -- provisioning ---------------------------------------------------------------
async def provision_realtime(request: web.Request) -> web.Response:
    """``POST /api/resources/realtime``: provision realtime (and database)."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    body = await read_object(request)
    region_in = body.get("write_region")
    region: Optional[str] = None
    if region_in is not None:
        if not isinstance(region_in, str):
            raise ApiError(400, '"write_region" must be a string')
        region = REGION_ALIASES.get(region_in.lower(), region_in.lower())
        if region not in REGIONS:
            allowed = ", ".join(sorted(REGIONS | set(REGION_ALIASES)))
            raise ApiError(400, f"unknown write_region {region_in!r}; use one of: {allowed}")
    if tenant.realtime:
        if region is not None and region != tenant.write_region:
            raise ApiError(
                409,
                f"realtime is already provisioned in {tenant.write_region}; "
                "delete it first to choose another write region",
            )
        return web.json_response(_resource_view(tenant, "active", []), dumps=dumps)
    auto: List[str] = []
    if not tenant.database:
        tenant.database = True
        auto.append("database")
    tenant.realtime = True
    tenant.write_region = region or tenant.write_region or DEFAULT_REGION
    db = await core.require_db(tenant)
    await db.call(db.ensure_schema)
    await core.state.save(tenant)
    return web.json_response(_resource_view(tenant, "provisioned", auto), dumps=dumps)


def _resource_view(tenant: Tenant, status: str, auto: List[str]) -> Dict[str, Any]:
    return {
        "success": True,
        "resource": "realtime",
        "status": status,
        "write_region": tenant.write_region,
        "auto_provisioned": auto,
    }


async def delete_realtime(request: web.Request) -> web.Response:
    """``DELETE /api/resources/realtime``: close its sockets, drop its table and apps."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    if not tenant.realtime:
        raise ApiError(404, "realtime is not provisioned for this tenant")
    tenant.realtime = False
    for conn in core.hub.conns(tenant_id=tenant.id):
        await _close_quietly(conn, 1008, "realtime resource deleted")
    db = await core.db_for(tenant.id)
    if db is not None:
        await db.call(db.drop_realtime)
    for callback in core.on_realtime_deleted:
        await callback(tenant)
    await core.state.save(tenant)
    return web.json_response(
        {"success": True, "resource": "realtime", "status": "deleted"}, dumps=dumps
    )


async def provision_database(request: web.Request) -> web.Response:
    """``POST /api/resources/database``: provision the tenant's SQL database."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    status = "active" if tenant.database else "provisioned"
    tenant.database = True
    await core.state.save(tenant)
    return web.json_response(
        {"success": True, "resource": "database", "status": status}, dumps=dumps
    )


async def delete_database(request: web.Request) -> web.Response:
    """``DELETE /api/resources/database``: refused while realtime is active."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    if tenant.realtime:
        raise ApiError(409, "cannot delete database while realtime is active")
    if not tenant.database:
        raise ApiError(404, "database is not provisioned for this tenant")
    tenant.database = False
    db = core.dbs.pop(tenant.id, None)
    if db is not None:
        await asyncio.get_running_loop().run_in_executor(None, db.close)
    for suffix in ("", "-wal", "-shm"):
        path = core.data_dir / "tenants" / f"{tenant.id}.sqlite3{suffix}"
        path.unlink(missing_ok=True)
    await core.state.save(tenant)
    return web.json_response(
        {"success": True, "resource": "database", "status": "deleted"}, dumps=dumps
    )


async def list_resources(request: web.Request) -> web.Response:
    """``GET /api/resources``: what the tenant has provisioned (a local extension)."""
    core = request.app[CORE]
    tenant = core.tenant_by_key(request)
    return web.json_response(
        {
            "resources": {
                "realtime": {"active": tenant.realtime, "write_region": tenant.write_region},
                "database": {"active": tenant.database},
            },
            "tier": core.limiter.tier.name,
            "paused": tenant.paused,
        },
        dumps=dumps,
    )


# -- edge: sessions and tokens ------------------------------------------------------
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
    core.limiter.take(tenant, MINT)
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


# -- edge: the realtime socket --------------------------------------------------------
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
    cap = core.limiter.sockets_cap()
    where = f"on the {core.limiter.tier.name} tier"
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
        core.hub.open(conn, core.now())
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
        core.limiter.take(tenant, PUBLISH)
    except ApiError as e:
        _refuse(core, tenant, conn, e.message)
        return
    _submit(
        core, tenant, Pending(conn.channel, event, data_json, persist, core.now_ms(), sender=conn)
    )


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
            stored = await core.stored_ack(tenant, idem_key)
            if stored is not None:
                fut.set_result(stored)
                seen = True
        if seen:
            try:
                result = await asyncio.shield(fut)
            except PersistError as e:
                raise ApiError(500, str(e)) from None
            return web.json_response(result, headers={"Idempotent-Replayed": "true"}, dumps=dumps)
    else:
        fut = asyncio.get_running_loop().create_future()
    try:
        core.limiter.take(tenant, PUBLISH)
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
    except PersistError as e:
        if idem_key:
            core.forget(tenant, idem_key)
        raise ApiError(500, str(e)) from None
    return web.json_response(result, dumps=dumps)


async def history(request: web.Request) -> web.Response:
    """``GET /edge/realtime/history?channel=&after=&limit=``: persisted messages."""
    core = request.app[CORE]
    tenant = core.edge_tenant(request)
    core.require_realtime(tenant)
    channel = check_channel(request.query.get("channel"))
    after = _int_param(request, "after", 0, 0, None)
    limit = _int_param(request, "limit", 50, 1, 100)
    core.limiter.take(tenant, HISTORY)
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
    except SqlTooLarge as e:
        raise ApiError(413, str(e)) from None
    except DatabaseFull as e:
        raise ApiError(413, str(e), status="RESOURCE_EXHAUSTED") from None
    except (sqlite3.Error, OverflowError, UnicodeError) as e:
        raise ApiError(400, f"SQL error: {e}") from None
    except ValueError as e:  # too many params; before 3.11 also sqlite3's answer to a NUL
        raise ApiError(400, str(e)) from None
    return web.Response(body=answer, content_type="application/json", charset="utf-8")


# -- middleware, logging, app ------------------------------------------------------------
@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure, ours or aiohttp's, as the JSON error envelope."""
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body too large (max {request.client_max_size} bytes)")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 404:
            return error_response(404, f"no such endpoint: {request.method} {request.path}")
        if e.status == 405:
            response = error_response(405, f"method {request.method} not allowed on {request.path}")
            # RFC 9110: a 405 says which methods the resource does allow.
            allowed = getattr(e, "allowed_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        return error_response(e.status, e.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines with keys and tokens taken out of the path and query
    (parameter names compared percent-decoded, as the server reads them)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path_qs = request.path_qs
        try:
            app: Optional[web.Application] = request.app  # type: ignore[attr-defined]
        except (AttributeError, AssertionError):  # a request aiohttp refused has no app
            app = None
        if app is not None and CORE in app:
            core = app[CORE]
            learn_keys(path_qs, lambda k: core.state.by_key(k) is not None, core.redactor)
        self.logger.info(
            '%s "%s %s" %d %.1fms',
            request.remote,
            request.method,
            redact(path_qs),
            response.status,
            time * 1000,
        )


def build_app(core: Core) -> web.Application:
    """The application with every route of the edge API."""
    app = web.Application(
        middlewares=[error_envelope],
        # Room for a maximal payload plus its JSON envelope.
        client_max_size=max(2 * core.config.max_payload, 1 << 20),
    )
    app[CORE] = core
    r = app.router
    r.add_post("/api/resources/realtime", provision_realtime)
    r.add_delete("/api/resources/realtime", delete_realtime)
    r.add_post("/api/resources/database", provision_database)
    r.add_delete("/api/resources/database", delete_database)
    r.add_get("/api/resources", list_resources, allow_head=False)
    r.add_post("/edge/session", edge_session)
    r.add_post("/edge/realtime/token", mint_token)
    r.add_get("/edge/realtime", realtime_socket, allow_head=False)
    r.add_post("/edge/realtime", http_publish)
    r.add_get("/edge/realtime/history", history, allow_head=False)
    r.add_post("/edge/database", direct_sql)
    r.add_get(OPENAPI_PATH, serve_document, allow_head=False)

    async def on_startup(app: web.Application) -> None:
        await core.startup()

    async def on_shutdown(app: web.Application) -> None:
        await core.shutdown()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


def make_data_dir(path: Optional[Path]) -> Tuple[Path, Optional[tempfile.TemporaryDirectory[str]]]:
    """The data dir to use, creating a temporary one when none is given."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return path, None
    tmp = tempfile.TemporaryDirectory(prefix="cohrt-sync-")
    return Path(tmp.name), tmp


__all__ = ["CORE", "Config", "Core", "build_app", "make_data_dir", "redact"]
