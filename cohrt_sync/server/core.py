"""The state every handler shares (:class:`Core`): tenants, databases, sockets,
limits, the clock, authentication and the memory of idempotent publishes."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple

from aiohttp import web

from .._redact import Redactor
from . import tokens
from .backplane import Backplane
from .config import Config
from .connlimits import ConnLimits
from .errors import ApiError
from .hub import Conn, Hub, ShuttingDown
from .limits import PAUSE_CLOSE_CODE, PAUSE_REASON, REQUEST, Limiter
from .outbox import close_or_abort
from .sockcaps import SocketCaps
from .state import StateStore, Tenant
from .tenantdb import IDEMPOTENCY_MAX, IDEMPOTENCY_TTL_S, TenantDB
from .usage import Usage

#: Where realtime is provisioned when no ``write_region`` is asked for.
DEFAULT_REGION = "apac"
#: Verified edge session bearers remembered (each lives a minute).
SESSION_CACHE_MAX = 10_000


class Core:
    """Everything the handlers share: state, databases, sockets, limits, clock.

    :param config: the server's settings.
    :param data_dir: where ``server.sqlite3`` and the tenant databases live.
    :param backplane: the other nodes of a cluster (:mod:`.backplane`); none by default.
    """

    def __init__(
        self, config: Config, data_dir: Path, backplane: Optional[Backplane] = None
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.clock_offset = 0.0
        #: The keys this server knows, kept out of its logs (see logfilter).
        self.redactor = Redactor(config.keys)
        self.state = StateStore(data_dir / "server.sqlite3")
        self.backplane = backplane if backplane is not None else Backplane()
        self.limiter = Limiter(
            config.tier,
            self.now,
            self.state,
            self._close_paused,
            shared=self.backplane.shared_counts(),
        )
        #: Charges to the caps, durable before what they count is answered.
        self.usage = Usage(self.state, self.limiter)
        self.hub = Hub(
            self.db_for,
            backplane=self.backplane,
            live_ids=config.live_ids,
            batch_commits=config.batch_commits,
            socket_queue_bytes=config.socket_queue_bytes,
            total_queue_bytes=config.total_queue_bytes,
        )
        #: Sockets per tenant and per user, and each user's rate of opening them.
        self.sockets = SocketCaps(
            self.now,
            max_user_sockets=config.max_user_sockets,
            user_socket_opens=config.user_socket_opens,
            # A cluster's tenant caps count every node's sockets.
            per_tenant=self.backplane.socket_counts(),
        )
        #: Set by the runner from the fd limit (see connlimits.resolve_limits).
        self.conn_limits: Optional[ConnLimits] = None
        self.dbs: Dict[str, TenantDB] = {}
        self.sql_limits = config.sql_limits()
        self._idempotency: Dict[
            str, collections.OrderedDict[str, Tuple[float, asyncio.Future[Dict[str, Any]]]]
        ] = {}
        #: Called with the tenant when its realtime resource is deleted
        #: (RealtimeKit removes the tenant's app there).
        self.on_realtime_deleted: List[Callable[[Tenant], Awaitable[None]]] = []
        #: Verified edge session bearers: token → (tenant id, expiry).
        self._sessions: collections.OrderedDict[str, Tuple[str, int]] = collections.OrderedDict()
        #: Handlers waiting for their request body (see :meth:`shutdown`).
        self.body_readers: Set[asyncio.Task[Any]] = set()
        for key in config.keys:
            self.state.add_key(key)
        # Before serving, so a synchronous write blocks nobody.
        self.state.save_all_now()
        self.state.save_tiers_now(self._settle_tiers())

    def _settle_tiers(self) -> List[Tenant]:
        """Give the tenants the tiers and accounts the settings name; returns them."""
        named: Dict[str, Tenant] = {}
        for key, tier in self.config.tiers.items():
            tenant = self.state.add_key(key)
            tenant.tier = tier
            named[tenant.id] = tenant
        for account, keys in self.config.accounts.items():
            for key in keys:
                tenant = self.state.add_key(key)
                tenant.account = account
                named[tenant.id] = tenant
        return list(named.values())

    def _close_paused(self, tenant: Tenant, why: str) -> None:
        # Called from inside the refused request, before its refusal is queued
        # behind the tenant's earlier publishes. The closes wait for the next
        # tick, then for their turn in that queue, then for each socket's
        # outbox: every frame sent up to and including the one that tipped the
        # pause gets its reply before the close frame.
        reason = (PAUSE_REASON + why)[:120]

        def close_all() -> None:
            for conn in self.hub.conns(tenant_id=tenant.id):
                conn.close_when_sent(PAUSE_CLOSE_CODE, reason)

        def queue_close() -> None:
            try:
                self.hub.after_queued(tenant.id, close_all)
            except ShuttingDown:
                pass  # every socket is being closed with 1001 already

        asyncio.get_running_loop().call_soon(queue_close)

    def now(self) -> float:
        """The server's clock: wall time plus what tests advanced it by."""
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        """:meth:`now` in integer milliseconds."""
        return int(self.now() * 1000)

    # -- lifecycle ------------------------------------------------------------
    async def startup(self) -> None:
        """Provision the keys' tenants if the config asks and open provisioned
        databases."""
        self.backplane.start(self.hub, self.state, self.local_db)
        if self.config.provision:
            for key in self.config.keys:
                tenant = self.state.by_key(key)
                if tenant is not None and not tenant.realtime:
                    await self.provision(tenant)
        counts: Dict[str, Dict[str, int]] = {}
        for tenant in self.state.all():
            if tenant.realtime:
                db = await self.db_for(tenant.id)
                if db is not None:
                    await db.call(db.ensure_schema)
                    counts[tenant.id] = await self._usage_counts(db, tenant)
        self.limiter.load_counts(counts)

    async def _usage_counts(self, db: TenantDB, tenant: Tenant) -> Dict[str, int]:
        stored = await db.call(db.usage_counts)
        if not stored:
            seeds = self.limiter.seed_counts(tenant)
            if seeds:
                await db.call(db.insert_batch, [], seeds)
                stored = dict(seeds)
        return stored

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
            *(close_quietly(c, 1001, "server shutting down") for c in self.hub.conns())
        )
        await self.usage.close()
        await self.backplane.close()
        loop = asyncio.get_running_loop()
        for db in list(self.dbs.values()):
            await loop.run_in_executor(None, db.close)
        self.dbs.clear()
        await loop.run_in_executor(None, self.state.close)

    async def db_for(self, tenant_id: str) -> Optional[TenantDB]:
        """The tenant's database, opened on first use; None if not provisioned.

        In a cluster, the owner node's (see :meth:`.Backplane.database`).
        """
        return await self.backplane.database(tenant_id, self.local_db)

    async def local_db(self, tenant_id: str) -> Optional[TenantDB]:
        """The tenant's database file opened by this process; None if not provisioned."""
        db = self.dbs.get(tenant_id)
        if db is not None:
            if not self.backplane.clustered or db.same_file():
                return db
            # Another node deleted the file (DELETE /api/resources/database):
            # writing on through this handle would write to nowhere.
            del self.dbs[tenant_id]
            await asyncio.get_running_loop().run_in_executor(None, db.close)
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

    async def provision(self, tenant: Tenant, write_region: Optional[str] = None) -> List[str]:
        """Provision realtime for ``tenant``, with the database it needs.

        The one way a tenant gets realtime: the HTTP route, ``--provision``
        and :meth:`~cohrt_sync.server.LocalServer.add_key` all come here.

        :param write_region: a D1 region, already checked; None keeps the
            tenant's earlier one, or :data:`DEFAULT_REGION`.
        :returns: what was provisioned along with it: ``["database"]`` or nothing.
        """
        auto: List[str] = []
        if not tenant.database:
            tenant.database = True
            auto.append("database")
        tenant.realtime = True
        tenant.write_region = write_region or tenant.write_region or DEFAULT_REGION
        db = await self.require_db(tenant)
        await db.call(db.ensure_schema)
        await self.state.save(tenant)
        return auto

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
            ack = await db.call(db.find_idempotent, key, not_before)
        except sqlite3.Error:
            # No table (realtime deleted, or not yet provisioned): nothing stored.
            return None
        if ack is not None and not self.config.live_ids:
            ack.pop("id", None)  # as the first answer was (Hub.finish)
        return ack


#: Where the application keeps its :class:`Core`.
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


async def close_quietly(conn: Conn, code: int, reason: str) -> None:
    """Close ``conn`` with ``code``; abort it 2 s later whatever the close did."""
    await close_or_abort(conn.ws, code, reason, conn.abort, deadline=2.0)


__all__ = ["CORE", "DEFAULT_REGION", "Core", "close_quietly"]
