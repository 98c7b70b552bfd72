"""The Redis :class:`~..backplane.Backplane`: one node of a cluster (docs/cluster.md).

It answers the hub's questions across nodes: presence through
:mod:`.presence`, who sequences a tenant through :mod:`.leases`, forwarding
through :mod:`.forward`; and it keeps the node's background work: the bus
listener (every node hears every broadcast, on one pub/sub channel), and the
heartbeat, which also renews leases, reaps dead nodes and puts this node's
presence back into Redis when Redis lost it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, cast

from .._json import dumps
from ..backplane import Backplane, BackplaneDown, OpenLocal, PresenceList
from ..pending import Pending
from ..tenantdb import SqlLimits
from .bus import CONTROL, BusReader
from .counts import SocketCounts
from .forward import Forwarder, OwnerGone, RemoteTenantDB
from .leases import RENEW_EVERY_S, Lease, LeaseBook, StaleToken
from .link import RedisError, RedisLink
from .presence import ClusterPresence, entry_of
from .tally import RedisCounts

if TYPE_CHECKING:
    from ..backplane import Socket, Sockets
    from ..state import StateStore
    from ..tenantdb import TenantDB

log = logging.getLogger("cohrt_sync.server.cluster")

#: Seconds between heartbeats; a node silent for DEAD_AFTER_MS is reaped.
HEARTBEAT_S = 0.5
DEAD_AFTER_MS = 3000
#: Rows re-broadcast per page by a new owner (see :meth:`RedisBackplane._replay`).
REPLAY_PAGE = 500
REDIS_DOWN = "the cluster's Redis is unreachable; nothing was written, retry shortly"


class RedisBackplane(Backplane):
    """This node of a cluster.

    :param link: the cluster's Redis, connected.
    :param secret: the cluster's shared secret (node-to-node HTTP).
    :param sql_limits: the SQL limits requests forwarded to the owner use.
    """

    clustered = True

    def __init__(self, link: RedisLink, secret: str, sql_limits: SqlLimits) -> None:
        self.link = link
        self.secret = secret
        self.node = secrets.token_hex(6)  # new each start: a restarted node is another node
        self.leases = LeaseBook(link, self.node)
        self.presence = ClusterPresence(link, self.node)
        self.forwarder = Forwarder(self.node, secret)
        self.counts = SocketCounts(self._count_changed)
        self.tally = RedisCounts(link.url, self.node, lambda: self.link.up, link.keys)
        self.sql_limits = sql_limits
        #: tenant → the node last seen owning it (dropped when it fails to answer).
        self.owners: Dict[str, str] = {}
        self._urls: Dict[str, str] = {}
        #: tenant → the first id this node committed but could not broadcast.
        self._unsent: Dict[str, int] = {}
        self._presence_stale = False
        self._url: Optional[str] = None
        self._hub: Optional[Sockets] = None
        self._state: Optional[StateStore] = None
        self._open_local: Optional[OpenLocal] = None
        self._tasks: List[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------
    def start(self, hub: Sockets, state: StateStore, open_local: OpenLocal) -> None:
        self._hub, self._state, self._open_local = hub, state, open_local
        # Two nodes that started together may each have made a secret for a
        # key: the one in the shared state file is the one every node uses.
        for tenant in state.all():
            state.reload(tenant.id)
        state.on_saved = self._tenants_saved
        bus = BusReader(
            self.link, self.node, hub, self.forwarder, self.counts,
            on_lost=self._bus_lost, on_tenant=state.reload, on_gone=self._forget_node,
        )  # fmt: skip
        self._tasks = [asyncio.ensure_future(bus.run()), asyncio.ensure_future(self._heartbeat())]

    async def announce(self, base_url: str) -> None:
        self._url = base_url
        await self.link.call(self.link.client.hset(self.link.keys.node(self.node), "url", base_url))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.leases.release_all()
            for tenant in list(self.counts.local):
                await self._send_count(tenant, 0)
            await self.presence.bury(self.node, time.time())
        except (RedisError, OSError) as e:
            log.warning("cluster node %s: could not leave cleanly (%s)", self.node, e)
        await self.forwarder.close()
        await self.link.close()
        self.tally.close()

    def socket_counts(self) -> Dict[str, int]:
        return self.counts

    def shared_counts(self) -> RedisCounts:  # the limits' per-minute, monthly, lifetime
        return self.tally

    # -- presence -----------------------------------------------------------------
    async def join(
        self, conn: Socket, first_here: bool, local: PresenceList
    ) -> tuple[PresenceList, bool]:
        try:
            if first_here:
                roster = await self.presence.join(entry_of(conn), conn.name, conn.id)
            else:
                roster = await self.presence.roster(conn.tenant_id, conn.channel)
        except (RedisError, OSError):
            # Degraded, not refused: the socket opens with this node's view;
            # the heartbeat puts it into Redis (and announces it) once it is back.
            self._presence_stale = True
            return local, False
        return roster, False

    async def leave(self, conn: Socket, last_here: bool, name: Optional[str], now: float) -> bool:
        if last_here:
            try:
                await self.presence.leave(entry_of(conn), name, now)
            except (RedisError, OSError):
                self._presence_stale = True
        return False

    # -- ownership, forwarding and broadcast ---------------------------------------
    async def sequences_here(self, tenant_id: str) -> bool:
        if not self.link.up:
            raise BackplaneDown(REDIS_DOWN)
        lease = self.leases.current(tenant_id)
        if lease is not None:
            if tenant_id in self._unsent:
                # What could not be broadcast goes out before anything newer:
                # a node drops ids older than one it delivered.
                async with self.leases.lock(tenant_id):
                    await self._replay(tenant_id, lease)
            return True
        known = self.owners.get(tenant_id)
        if known is not None and known != self.node:
            return False
        return await self._take(tenant_id)

    async def _take(self, tenant: str) -> bool:
        """Take the tenant's lease if it is free; whether this node owns it now."""
        async with self.leases.lock(tenant):
            if self.leases.current(tenant) is not None:
                return True
            try:
                holder, lease = await self.leases.acquire(tenant)
                if lease is None:
                    self.owners[tenant] = holder
                    return False
                await self._claim(lease)
            except (RedisError, OSError):
                raise BackplaneDown(REDIS_DOWN) from None
            # Before the lease counts here: no publish of this node may reach
            # a socket ahead of the last owner's unbroadcast ones.
            await self._replay(tenant, lease)
            self.leases.held[tenant] = lease
            self.owners[tenant] = self.node
        return True

    async def _claim(self, lease: Lease) -> None:
        """Store the new token in the tenant's file before anything else is written."""
        assert self._open_local is not None
        db = await self._open_local(lease.tenant)
        if db is None:
            return
        db.write_guard = lease.guard
        for _ in range(50):
            try:
                await db.call(db.guarded_write)
                return
            except StaleToken as e:
                # Redis lost its counter: go on from the token the file holds.
                if not await self.leases.bump(lease, e.stored):
                    break
            except sqlite3.OperationalError:
                # A stale owner still holds the file's write lock: it commits
                # or fails first, then this node's token fences it out.
                await asyncio.sleep(0.1)
            if not lease.valid():
                break
        raise BackplaneDown("could not take over the tenant's database; retry")

    async def forward(self, tenant_id: str, batch: List[Pending]) -> List[Pending]:
        assert self._hub is not None
        hub = self._hub

        async def locate() -> Optional[str]:
            owner = self.owners.get(tenant_id)
            if owner is None or owner == self.node:
                if await self.sequences_here(tenant_id):
                    return None
                owner = self.owners[tenant_id]
            try:
                return await self._url_of(owner)
            except (RedisError, OSError):
                raise BackplaneDown(REDIS_DOWN) from None

        def lost() -> None:
            # Gone, moved, or it may have acted: ask Redis afresh next time.
            self.owners.pop(tenant_id, None)

        return await self.forwarder.forward(
            tenant_id, batch, locate, lost, lambda p: hub.finish(tenant_id, p)
        )

    async def _url_of(self, node: str) -> str:
        url = self._urls.get(node)
        if url is None:
            url = await self.link.call(self.link.client.hget(self.link.keys.node(node), "url"))
            if not url:
                raise OwnerGone(f"node {node} has not said where it serves")
            self._urls[node] = url
        return url

    async def broadcast(self, tenant_id: str, batch: List[Pending]) -> None:
        assert self._hub is not None
        items: List[Any] = []
        newest = 0
        for p in batch:
            p.encode(self._hub.live_ids)
            reply = list(p.reply_to) if p.reply_to is not None else [None, None]
            if p.error is not None:
                if p.reply_to is not None:
                    items.append([p.channel, None, None, *reply, p.error, 1])
                continue
            items.append([p.channel, p.frame, p.id, *reply, p.ack, 0])
            newest = max(newest, p.id or 0)
        if not items:
            return
        if not await self._publish(tenant_id, items, newest):
            if newest:
                first = min(p.id for p in batch if p.id is not None)
                self._unsent.setdefault(tenant_id, first)
            for p in batch:
                if p.error is None and not p.persist:
                    # Nobody else heard it: an ack would claim a delivery that
                    # did not happen (a stored one is acked, and re-broadcast).
                    p.error = f"Failed to publish: {REDIS_DOWN}"

    async def _publish(
        self, tenant: str, items: List[Any], newest: int, lease: Optional[Lease] = None
    ) -> bool:
        lease = lease or self.leases.current(tenant)
        if lease is None or not lease.valid():
            return False
        k = self.link.keys
        message = tenant + "\n" + dumps({"o": self.node, "k": "pub", "i": items})
        try:
            return bool(
                await self.link.run(
                    "BROADCAST",
                    [k.lease(tenant), k.mark(tenant), k.bus],
                    [lease.value, newest, message],
                )
            )
        except (RedisError, OSError):
            return False

    async def _replay(self, tenant: str, lease: Lease) -> None:
        """Broadcast what is stored but may not have been: the last owner's final
        batch (it died between commit and broadcast), or this node's own while
        Redis was away. Done while the tenant's sequencer waits."""
        assert self._open_local is not None and self._hub is not None
        db = await self._open_local(tenant)
        if db is None:
            self._unsent.pop(tenant, None)
            return
        try:
            mark = await self.link.call(self.link.client.get(self.link.keys.mark(tenant)))
            after = int(mark) if mark is not None else await db.call(db.newest_id)
            if tenant in self._unsent:
                after = min(after, self._unsent[tenant] - 1)
            for _ in range(20):
                rows = await db.call(db.messages_after, after, REPLAY_PAGE)
                if not rows:
                    break
                after = rows[-1][0]
                batch = [p for p in map(Pending.stored, rows) if p is not None]
                for p in batch:
                    p.encode(self._hub.live_ids)
                items = [[p.channel, p.frame, p.id, None, None, None, 0] for p in batch]
                if batch and not await self._publish(tenant, items, after, lease):
                    return  # still unsent: tried again before the next publish
                for p in batch:
                    assert p.frame is not None
                    self._hub.fan_out(tenant, p.channel, p.frame, p.id)
            self._unsent.pop(tenant, None)
        except sqlite3.Error as e:
            # No messages table yet (provisioning is under way), or none any more.
            log.debug("cluster: nothing to re-broadcast for tenant %s: %s", tenant, e)
            self._unsent.pop(tenant, None)
        except (RedisError, OSError) as e:
            log.warning("cluster: could not re-broadcast tenant %s's last messages: %s", tenant, e)

    async def database(self, tenant_id: str, open_local: OpenLocal) -> Optional[TenantDB]:
        assert self._state is not None
        tenant = self._state.tenants.get(tenant_id)
        if tenant is None or not tenant.database:
            return None

        async def here_or_owner() -> Any:
            # The local file, fenced (a file opened anew too), or the owner's URL.
            if await self.sequences_here(tenant_id):
                db = await open_local(tenant_id)
                lease = self.leases.current(tenant_id)
                if db is not None and lease is not None:
                    db.write_guard = lease.guard
                return db
            try:
                return await self._url_of(self.owners[tenant_id]) + "/_cluster/db"
            except OwnerGone:
                return ""  # the first call looks again
            except (RedisError, OSError):
                raise BackplaneDown(REDIS_DOWN) from None

        async def relocate() -> Any:
            self.owners.pop(tenant_id, None)
            return await here_or_owner()

        target = await here_or_owner()
        if not isinstance(target, str):
            return cast("Optional[TenantDB]", target)
        remote = RemoteTenantDB(self.forwarder, target, tenant_id, self.sql_limits, relocate)
        return cast("TenantDB", remote)

    # -- what other nodes say --------------------------------------------------------------
    def _bus_lost(self) -> None:
        # Missed messages can't be had again: what this node holds in Redis is
        # checked once it is back (see _heartbeat).
        self._presence_stale = True

    def _forget_node(self, node: str) -> None:
        self.counts.forget_node(node)
        self._urls.pop(node, None)
        for tenant, owner in list(self.owners.items()):
            if owner == node:
                del self.owners[tenant]

    def _control(self, event: Dict[str, Any]) -> None:
        message = self._control_message(event)
        self._spawn(self.link.call(self.link.client.publish(self.link.keys.bus, message)))

    def _control_message(self, event: Dict[str, Any]) -> str:
        return CONTROL + "\n" + dumps({"o": self.node, **event})

    def _spawn(self, awaitable: Any) -> None:
        async def run() -> None:
            try:
                await awaitable
            except (RedisError, OSError):
                pass

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _tenants_saved(self, tenant_ids: List[str]) -> None:
        self._control({"k": "tenant", "t": tenant_ids})

    def _count_changed(self, tenant: str, count: int) -> None:
        self._spawn(self._send_count(tenant, count))

    async def _send_count(self, tenant: str, count: int) -> None:
        # One round trip: the count, this node's index of tenants, and the news.
        k = self.link.keys
        pipe = self.link.client.pipeline(transaction=False)
        pipe.hset(k.sockets(tenant), self.node, count)
        pipe.sadd(k.socket_tenants(self.node), tenant)
        pipe.publish(
            k.bus, self._control_message({"k": "sockets", "t": tenant, "n": self.node, "c": count})
        )
        await self.link.call(pipe.execute())

    # -- the heartbeat -------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        registered = False
        next_renew = 0.0
        while True:
            try:
                was_down = not self.link.up
                known, now_ms = await self.link.run(
                    "HEARTBEAT", [self.link.keys.nodes], [self.node]
                )
                if registered and (not known or was_down):
                    # Reaped while paused, or Redis restarted empty: put this
                    # node back as it is.
                    self._presence_stale = True
                    if self._url is not None:
                        await self.announce(self._url)
                    for tenant, count in list(self.counts.local.items()):
                        await self._send_count(tenant, count)
                registered = True
                if time.monotonic() >= next_renew:
                    next_renew = time.monotonic() + RENEW_EVERY_S
                    await self.leases.renew_all()
                    for tenant in list(self._unsent):
                        lease = self.leases.current(tenant)
                        if lease is None:
                            # Take it back to broadcast them (a replay comes with it),
                            # unless another node has: then they are in its file only.
                            if not await self._take(tenant):
                                self._unsent.pop(tenant, None)
                            continue
                        async with self.leases.lock(tenant):
                            if tenant in self._unsent:
                                await self._replay(tenant, lease)
                if self._presence_stale and self._hub is not None:
                    self._presence_stale = False
                    await self.presence.resync(self._hub.users_here(), time.time())
                await self._reap(int(now_ms))
            except (RedisError, OSError, BackplaneDown) as e:
                log.debug("cluster heartbeat: Redis unreachable (%s)", e)
            except Exception:  # pragma: no cover - a bug; keep beating
                log.exception("cluster heartbeat failed")
            await asyncio.sleep(HEARTBEAT_S)

    async def _reap(self, now_ms: int) -> None:
        k, client = self.link.keys, self.link.client
        dead = await self.link.call(client.zrangebyscore(k.nodes, "-inf", now_ms - DEAD_AFTER_MS))
        for node in dead:
            if node == self.node:
                continue
            if not await self.link.call(client.set(k.reaping(node), self.node, nx=True, px=10_000)):
                continue
            log.warning("cluster: node %s stopped answering; its presence expires", node)
            await self.presence.bury(node, now_ms / 1000)
            self._forget_node(node)
            self._control({"k": "gone", "n": node})


__all__ = ["RedisBackplane"]
