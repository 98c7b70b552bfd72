"""Live sockets, channels, presence and the ordered publish pipeline.

Every publish of a tenant, over WebSocket or HTTP, persisted or not, passes
through that tenant's sequencer (a task of :class:`Hub`). It takes whatever has queued up
while the previous batch was committing, writes all persisted rows of the new
batch in one transaction, and only then acknowledges and broadcasts, in queue
order. That gives: ack after commit, broadcast order == id order, one reply
per inbound frame in the order the frames came (so clients may correlate
acks FIFO), and many messages per fsync under load. In a cluster only the
tenant's owner node sequences; the others forward (:mod:`.backplane`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Set,
    Tuple,
    Union,
)

import attrs
from aiohttp import web

from ._json import dumps
from .backplane import Backplane, BackplaneDown
from .outbox import SLOW_CLOSE_CODE, Budget, OutFrame, close_or_abort
from .pending import Pending, PersistError, ShuttingDown, counts
from .presence_frames import join_frame, leave_frame

if TYPE_CHECKING:
    from .tenantdb import TenantDB

log = logging.getLogger("cohrt_sync.server")

#: Most rows written in one transaction.
MAX_BATCH = 1_000

#: Numbers this process's sockets (a forwarded publish names its socket by it).
_conn_ids = itertools.count(1)


@attrs.define(eq=False)
class Conn:
    """One open WebSocket: who it is, where it listens, what it has to send.

    Frames wait in :attr:`out` for the writer task; :attr:`budget` bounds
    their bytes (see :mod:`.outbox`), and :meth:`drop_slow` ends a socket
    that falls too far behind.
    """

    ws: web.WebSocketResponse
    tenant_id: str
    channel: str
    user_id: str
    name: Optional[str]
    transport: Optional[asyncio.Transport]
    budget: Optional[Budget] = None
    out: Deque[OutFrame] = attrs.field(factory=collections.deque)
    #: Bytes of the frames in :attr:`out`.
    queued_bytes: int = 0
    wakeup: asyncio.Event = attrs.field(factory=asyncio.Event)
    writer: Optional[asyncio.Task[None]] = None
    closer: Optional[asyncio.Task[None]] = None
    closed: bool = False
    id: int = attrs.field(factory=lambda: next(_conn_ids))
    #: (code, reason) to close with once :attr:`out` is sent (:meth:`close_when_sent`).
    close_after: Optional[Tuple[int, str]] = None

    def send(self, frame: Union[str, OutFrame]) -> None:
        """Queue ``frame`` (one :class:`OutFrame` may go to many sockets)."""
        if self.closed:
            return
        if isinstance(frame, str):
            frame = OutFrame(frame)
        self.out.append(frame)
        if self.budget is not None:
            self.budget.held(self, frame)
        self.wakeup.set()

    def greet(self, *texts: str) -> None:
        """Queue ``texts`` ahead of every frame already queued (the greeting comes first)."""
        for text in reversed(texts):
            frame = OutFrame(text)
            self.out.appendleft(frame)
            if self.budget is not None:
                self.budget.held(self, frame)
        self.wakeup.set()

    def release(self) -> None:
        """Drop every queued frame now, so its memory comes back."""
        out, budget = self.out, self.budget
        while out:
            frame = out.popleft()
            if budget is not None:
                budget.released(self, frame)

    def drop_slow(self, reason: str) -> None:
        """Too far behind: free the queue, close with 1013 and ``reason``, abort if unheard."""
        if self.closed:
            return
        self.closed = True
        self.release()
        # Not cancelled: the writer may be waiting for the transport to drain,
        # and cancelling that wait would cancel the drain future aiohttp
        # shares with the close below. It ends after its one in-flight frame.
        self.wakeup.set()
        self.closer = asyncio.ensure_future(
            close_or_abort(self.ws, SLOW_CLOSE_CODE, reason, self.abort)
        )

    def close_when_sent(self, code: int, reason: str) -> None:
        """Close with ``code`` once every frame queued so far, and since, is sent.

        A close that overtook queued frames would leave the peer without
        replies it is owed (docs/server.md: every frame gets one reply).
        """
        if self.closed or self.close_after is not None:
            return
        self.close_after = (code, reason)
        self.wakeup.set()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame."""
        self.closed = True
        self.release()
        if self.transport is not None:
            self.transport.abort()

    async def write_loop(self) -> None:
        """Send queued frames in order until the socket closes or fails."""
        ws, out, wakeup = self.ws, self.out, self.wakeup
        while True:
            if not out:
                if self.closed:
                    return
                if self.close_after is not None:
                    self.closed = True
                    code, reason = self.close_after
                    await close_or_abort(ws, code, reason, self.abort, deadline=2.0)
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            frame = out.popleft()
            if self.budget is not None:
                self.budget.released(self, frame)
            try:
                await ws.send_str(frame.text)
            except (ConnectionError, RuntimeError):
                # The peer went away mid-send; the reader side cleans up.
                self.closed = True
                self.release()
                return


@attrs.define(eq=False)
class ChannelState:
    """The sockets on one channel of one tenant, and its users for presence."""

    conns: Set[Conn] = attrs.field(factory=set)
    #: user id → [open sockets, display name]
    users: Dict[str, List[Any]] = attrs.field(factory=dict)

    def presence(self) -> List[Dict[str, Optional[str]]]:
        return [{"id": uid, "name": entry[1]} for uid, entry in self.users.items()]


class Hub:
    """Channels and sockets of every tenant, and each tenant's sequencer.

    :param db_for: returns the tenant's database (None if it has none).
    :param live_ids: put ``id`` in live frames and acks (the cloud may not).
    :param batch_commits: False writes one transaction per message (benchmarks).
    :param socket_queue_bytes: most bytes queued for one socket (see :mod:`.outbox`).
    :param total_queue_bytes: most bytes queued for all sockets together.
    :param backplane: the rest of the service (:mod:`.backplane`); this process alone by default.
    """

    def __init__(
        self,
        db_for: Callable[[str], Awaitable[Optional[TenantDB]]],
        *,
        live_ids: bool = True,
        batch_commits: bool = True,
        socket_queue_bytes: int = 4 << 20,
        total_queue_bytes: int = 128 << 20,
        backplane: Optional[Backplane] = None,
    ) -> None:
        self._db_for = db_for
        self.budget = Budget(socket_queue_bytes, total_queue_bytes)
        self.live_ids = live_ids
        self.batch_commits = batch_commits
        self.backplane = backplane if backplane is not None else Backplane()
        self.channels: Dict[Tuple[str, str], ChannelState] = {}
        #: Per tenant, the newest message id delivered here: with several nodes
        #: a message can come twice (a stale owner's late broadcast), never back.
        self.delivered: Dict[str, int] = {}
        self._queues: Dict[str, Deque[Pending]] = {}
        self._wakeups: Dict[str, asyncio.Event] = {}
        self._tasks: Dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # -- sockets and presence -------------------------------------------------
    async def open(self, conn: Conn) -> None:
        """Register ``conn``: greet it, then tell the others if its user is new."""
        key = (conn.tenant_id, conn.channel)
        conn.budget = self.budget
        state = self.channels.get(key)
        if state is None:
            state = self.channels[key] = ChannelState()
        entry = state.users.get(conn.user_id)
        if entry is None:
            state.users[conn.user_id] = [1, conn.name]
        else:
            entry[0] += 1
        # Joined before presence is asked for: whatever is published from here
        # on queues behind the greeting, so nothing falls between the two.
        others = list(state.conns)
        state.conns.add(conn)
        presence, announce = await self.backplane.join(conn, entry is None, state.presence())
        conn.greet(
            dumps({"action": "connected", "event": "connected", "channel": conn.channel}),
            dumps(
                {
                    "action": "subscribed",
                    "event": "subscribed",
                    "channel": conn.channel,
                    "presence": presence,
                }
            ),
        )
        if announce:
            frame = OutFrame(join_frame(conn.channel, conn.user_id, conn.name))
            for other in others:
                other.send(frame)
        conn.writer = asyncio.ensure_future(conn.write_loop())

    async def close(self, conn: Conn, now: float) -> None:
        """Unregister ``conn``; the user's last socket sends ``leave`` to the rest."""
        key = (conn.tenant_id, conn.channel)
        state = self.channels.get(key)
        if state is not None and conn in state.conns:
            state.conns.discard(conn)
            if not state.conns:
                del self.channels[key]
            entry = state.users.get(conn.user_id)
            if entry is not None:
                entry[0] -= 1
                last_here = entry[0] <= 0
                if last_here:
                    del state.users[conn.user_id]
                if await self.backplane.leave(conn, last_here, entry[1], now):
                    self.to_channel(
                        conn.tenant_id, conn.channel,
                        leave_frame(conn.channel, conn.user_id, entry[1], now),
                    )
        conn.closed = True
        conn.wakeup.set()
        if conn.writer is not None:
            try:
                await asyncio.wait_for(conn.writer, timeout=1)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                conn.writer.cancel()
        conn.release()

    def users_here(self) -> Dict[Tuple[str, str, str], Optional[str]]:
        """(tenant, channel, user) → name of every user with a socket here."""
        pairs = ((key, state.users) for key, state in self.channels.items())
        return {(*key, user): entry[1] for key, users in pairs for user, entry in users.items()}

    def to_channel(
        self, tenant_id: str, channel: str, text: str, skip: Optional[int] = None
    ) -> None:
        """Send ``text`` to every socket of ``channel`` here, but the one numbered ``skip``."""
        state = self.channels.get((tenant_id, channel))
        if state is None:
            return
        frame = OutFrame(text)
        for conn in state.conns:
            if conn.id != skip:
                conn.send(frame)

    def conns(
        self, channel: Optional[str] = None, tenant_id: Optional[str] = None
    ) -> List[Conn]:
        """Open sockets, optionally only of one channel and/or tenant."""
        out: List[Conn] = []
        for (tid, ch), state in self.channels.items():
            if (channel is None or ch == channel) and (tenant_id is None or tid == tenant_id):
                out.extend(state.conns)
        return out

    # -- publishing -------------------------------------------------------------
    def submit(self, tenant_id: str, p: Pending) -> None:
        """Queue ``p`` behind everything the tenant published before it.

        :raises ShuttingDown: once :meth:`drain` has begun; nothing would
            ever answer a publish queued after its sequencer finished.
        """
        if self._stopping:
            raise ShuttingDown("the server is shutting down")
        queue = self._queues.get(tenant_id)
        if queue is None:
            queue = self._queues[tenant_id] = collections.deque()
            self._wakeups[tenant_id] = asyncio.Event()
            self._tasks[tenant_id] = asyncio.ensure_future(self._sequence(tenant_id))
        queue.append(p)
        self._wakeups[tenant_id].set()

    async def _sequence(self, tenant_id: str) -> None:
        queue = self._queues[tenant_id]
        wakeup = self._wakeups[tenant_id]
        while True:
            if not queue:
                if self._stopping:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH))]
            try:
                await self._process(tenant_id, batch)
            except Exception:  # pragma: no cover - a bug; keep the tenant's pipeline alive
                log.exception("publish pipeline failed for a batch")
                for p in batch:
                    if p.future is not None and not p.future.done():
                        p.future.set_exception(PersistError("internal error"))

    def after_queued(self, tenant_id: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything the tenant queued before it is answered.

        :raises ShuttingDown: as :meth:`submit`.
        """
        self.submit(tenant_id, Pending("", "", "", False, 0, on_turn=callback))

    async def _process(self, tenant_id: str, batch: List[Pending]) -> None:
        # Barriers are this node's own: never forwarded, stored or broadcast;
        # each runs once every publish of its batch is answered.
        barriers = [p for p in batch if p.on_turn is not None]
        if barriers:
            batch = [p for p in batch if p.on_turn is None]
        try:
            await self._sequence_batch(tenant_id, batch)
        finally:
            for p in barriers:
                assert p.on_turn is not None
                p.on_turn()

    async def _sequence_batch(self, tenant_id: str, batch: List[Pending]) -> None:
        if not batch:
            return
        try:
            if not await self.backplane.sequences_here(tenant_id):
                batch = await self.backplane.forward(tenant_id, batch)
                if not batch:
                    return
        except BackplaneDown as e:
            for p in batch:
                if p.future is not None and not p.future.done():
                    p.future.set_exception(e)
                p.error = p.error or f"Failed to publish: {e.message}"
                self.finish(tenant_id, p)
            return
        to_write = [p for p in batch if p.persist and p.error is None]
        live_counted = [p for p in batch if not p.persist and p.counts and p.error is None]
        if to_write or live_counted:
            db = await self._db_for(tenant_id)
            if db is None:
                for p in to_write:
                    p.error = "Failed to persist message: the tenant has no database"
                for p in live_counted:
                    p.error = "Failed to record usage: the tenant has no database"
            else:
                await self._persist(db, to_write, live_counted)
        await self.backplane.broadcast(tenant_id, batch)
        for p in batch:
            self.finish(tenant_id, p)

    async def _persist(self, db: TenantDB, items: List[Pending], live: List[Pending]) -> None:
        """Store ``items`` and count them and ``live`` (not stored) in one transaction."""
        rows = [
            (p.channel, p.event, p.data_json, p.created_at_ms, p.idempotency_key) for p in items
        ]
        if self.batch_commits:
            try:
                ids = await db.call(db.insert_batch, rows, counts(items + live))
            except Exception:
                # One bad row must not fail its neighbours: retry them one by one
                # so each gets its own verdict.
                ids = None
            if ids is not None:
                for p, id_ in zip(items, ids):
                    p.id = id_
                return
        for p, row in zip(items, rows):
            try:
                p.id = (await db.call(db.insert_batch, [row], counts([p])))[0]
            except Exception as e:
                p.error = f"Failed to persist message: {e}"
        if live:
            try:
                await db.call(db.insert_batch, [], counts(live))
            except Exception as e:
                for p in live:
                    p.error = f"Failed to record usage: {e}"

    def finish(self, tenant_id: str, p: Pending) -> None:
        """Answer ``p``'s publisher, then send its frame to the channel's sockets here."""
        if p.error is not None:
            if p.sender is not None:
                p.sender.send(dumps({"error": p.error}))
            elif p.future is not None and not p.future.done():
                p.future.set_exception(PersistError(p.error))
            return
        if p.ack is None:
            p.encode(self.live_ids)  # here, one at a time, unless a broadcast needed it
        if p.sender is not None and p.ack is not None:
            p.sender.send(p.ack)
        if p.future is not None and not p.future.done():
            result: Dict[str, Any] = {
                "channel": p.channel,
                "action": p.event,
                "event": p.event,
                "created_at_ms": p.created_at_ms,
            }
            if p.id is not None and self.live_ids:
                result["id"] = p.id
            p.future.set_result(result)
        if p.frame is not None:
            self.fan_out(tenant_id, p.channel, p.frame, p.id)
            p.frame = None  # the sockets' queues hold it now, and only they

    def fan_out(self, tenant_id: str, channel: str, frame: str, id_: Optional[int]) -> None:
        """Send a live frame to the channel's sockets here, unless its id was delivered."""
        if id_ is not None and self.backplane.clustered:
            if id_ <= self.delivered.get(tenant_id, 0):
                return
            self.delivered[tenant_id] = id_
        state = self.channels.get((tenant_id, channel))
        if state is None:
            return
        out = OutFrame(frame)
        for conn in state.conns:
            conn.send(out)

    async def drain(self) -> None:
        """Finish every queued publish, then stop the sequencers."""
        self._stopping = True
        for ev in self._wakeups.values():
            ev.set()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["MAX_BATCH", "ChannelState", "Conn", "Hub", "Pending", "PersistError", "ShuttingDown"]
