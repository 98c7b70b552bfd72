"""One channel: its public surface, and the parts it is made of.

A :class:`Channel` is a composition of two parts, each with one job:

* a :class:`~cohrt_sync.connection.Connection`, the socket side: the socket,
  the **reader** thread, publish acks, keepalive pings and the reconnect
  loop. It never runs user code, so a slow hook cannot delay pong replies
  or acks;
* a :class:`~cohrt_sync.dispatcher.Dispatcher`, the delivery side: the
  **dispatcher** thread, which runs hooks one at a time in arrival order,
  the exactly-once :class:`~cohrt_sync.delivery.DeliveryLedger` with its
  catch-up from history, and the presence
  :class:`~cohrt_sync.presence.Roster`.

The connection hands what it reads to the dispatcher through an
:class:`~cohrt_sync.inbox.Inbox`. Both are given a frozen
:class:`~cohrt_sync.settings.ChannelSettings` and the narrow
:class:`~cohrt_sync.port.HttpPort` (mint a token, read a history page, read
the catch-up anchor); nothing here imports or calls the client. The channel
tells its maker that it closed through the ``on_closed`` callback it was
given. docs/layout.md draws a message's way from the socket to a hook.

Overflow policy: when the dispatcher falls ``queue_size`` frames (or
``queue_bytes`` bytes) behind, the reader stops reading that socket, closes
it, and reconnects once the backlog is half drained. Persisted messages that
went by meanwhile are recovered from history exactly once (the normal
catch-up); non-persisted ones (``persist: false``, e.g. typing) are lost, as
they would be in any outage. Memory stays bounded and pings are never
starved by a full queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import attrs
import pluggy

from . import _fork
from ._cancel import cancel_on, cut_request
from ._latch import Latch, set_latch
from .acks import await_acks
from .connection import Connection
from .dispatcher import Dispatcher
from .errors import (
    BadRequestError,
    ChannelClosedError,
    CohrtTimeoutError,
    InvalidArgumentTypeError,
)
from .hookcalls import ChannelHooks
from .inbox import Inbox
from .models import PublishAck, User, check_data, check_event, publish_frame
from .port import HttpPort, catch_up_anchor
from .settings import ChannelSettings

__all__ = ["CLOSE_GRACE", "SEND_GRACE", "Channel", "close_channels"]

log = logging.getLogger("cohrt_sync.channel")

#: Seconds ``close()`` lets the peers answer the close frames and the hooks
#: running finish their calls, before it cuts what still waits (at most half
#: the timeout). Every channel closed together shares the one period.
CLOSE_GRACE = 0.5
#: Seconds a publish still sending when ``close()`` starts may take to finish
#: before its socket is cut (a publish that does not finish is stuck on a peer
#: that stopped reading). Shared by every channel closed together.
SEND_GRACE = 0.1


def _forget_nothing(channel: Channel) -> None:
    """The default ``on_closed``: a channel nobody keeps a registry of."""


@attrs.define(eq=False, repr=False)
class Channel:
    """A live subscription to one channel; made by :meth:`cohrt_sync.Client.subscribe`.

    :param name: the channel name.
    :param user_id: the user id the connection tokens are minted for.
    :param user_name: the display name in presence.
    :param ttl: lifetime of each connection token, in seconds.
    :param catch_up: recover messages missed while disconnected from history.
    :param settings: the channel's settings.
    :param port: the HTTP calls it makes (tokens, history, the catch-up anchor).
    :param plugin_manager: whose hooks it calls.
    :param client: the :class:`~cohrt_sync.Client` that made it, for hooks
        (``channel.client``); the channel itself never uses it.
    :param on_closed: called with the channel once ``close()`` has finished.
    """

    name: str
    user_id: str
    user_name: Optional[str] = None
    ttl: int = 300
    catch_up: bool = True
    _settings: ChannelSettings = attrs.field(kw_only=True)
    _port: HttpPort = attrs.field(kw_only=True)
    _plugin_manager: pluggy.PluginManager = attrs.field(kw_only=True)
    #: The client that made this channel: for hooks that open or publish more
    #: (typed loosely, so this module never imports the client).
    client: Any = attrs.field(default=None, kw_only=True)
    _on_closed: Callable[[Channel], None] = attrs.field(default=_forget_nothing, kw_only=True)

    # Latches, not threading.Events: a channel keeps both for its whole
    # life, and an Event is ten times the memory (cohrt_sync/_latch.py).
    _closing: Latch = attrs.field(factory=Latch, init=False)
    _closed_event: Latch = attrs.field(factory=Latch, init=False)
    _close_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _close_started: bool = attrs.field(default=False, init=False)
    #: The thread inside subscribe() while it opens this channel; its requests
    #: (token mint, catch-up anchor) are close()'s to cut. Guarded by _open_lock.
    _opener: Optional[threading.Thread] = attrs.field(default=None, init=False)
    _open_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _inbox: Inbox = attrs.field(factory=Inbox, init=False)
    _hooks: ChannelHooks = attrs.field(init=False)
    _conn: Connection = attrs.field(init=False)
    _dispatcher: Dispatcher = attrs.field(init=False)
    #: The process whose socket and threads these are (see cohrt_sync._fork).
    _pid: int = attrs.field(factory=os.getpid, init=False)

    def __attrs_post_init__(self) -> None:
        tag = f"{self.name}#{id(self) & 0xFFFF:04x}"
        self._hooks = ChannelHooks(self._plugin_manager, self, log)
        self._conn = Connection(
            self.name, self.user_id, self.user_name, self.ttl, self._settings, self._port,
            self._inbox, self._closing, tag,
        )
        self._dispatcher = Dispatcher(
            self.name, self.catch_up, self._settings.dispatch_linger,
            self._settings.dispatch_idle, self._port, self._hooks,
            self._inbox, self._closing, tag,
            reconnect=self._conn.force_reconnect,
            caught_up=self._conn.mark_healthy,
            close=self.close,
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "reconnecting")
        return f"<Channel {self.name!r} user={self.user_id!r} {state}>"

    def _follow_fork(self) -> None:
        # A forked child's copy: closed here, without a word on the parent's
        # socket and without its hooks (the parent's channel lives on).
        why = ChannelClosedError(
            f"channel {self.name!r} belongs to process {self._pid}, and this process "
            f"({os.getpid()}) is a fork of it: subscribe again in this process"
        )
        self._close_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._close_started = True
        self._closing = set_latch()
        self._closed_event = set_latch()
        self._conn.release_after_fork(why)

    # -- public surface --------------------------------------------------------

    @property
    def presence(self) -> Dict[str, User]:
        """Users in the channel now, ``{user_id: User}`` (a copy; self included)."""
        return self._dispatcher.presence

    @property
    def hooks(self) -> ChannelHooks:
        """Calls hooks for this channel the way the channel does (the built-in
        ``cohrt_sync.dm`` plugin fires ``on_dm_request`` through it)."""
        return self._hooks

    @property
    def connected(self) -> bool:
        """True while the socket is open (False while reconnecting or closed)."""
        _fork.follow(self)
        return self._conn.connected

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (in a forked child: always)."""
        _fork.follow(self)
        return self._closing.is_set()

    @property
    def last_id(self) -> Optional[int]:
        """Highest persisted message id known delivered (the catch-up cursor)."""
        return self._dispatcher.last_id

    @property
    def reconnects(self) -> int:
        """How many times this channel has reconnected."""
        return self._conn.reconnects

    @property
    def queue_depth(self) -> int:
        """Frames received and not yet dispatched to hooks (the overflow policy
        reconnects at ``queue_size``); a metric of how far hooks lag behind."""
        return len(self._inbox)

    def publish(
        self,
        data: Any,
        event: str = "message",
        persist: bool = True,
        *,
        timeout: Optional[float] = None,
    ) -> PublishAck:
        """Publish over this channel's socket and wait for the ``published`` ack.

        While the channel reconnects (after a drop, or the resync an ack
        timeout starts), the publish waits up to ``timeout`` for the next
        socket, then is sent; only a closed channel refuses at once. Acks
        arrive in the order publishes were sent, so they are matched
        first-in first-out, on each socket separately. A publish that was
        sent is never sent again: if its socket drops before the ack, the
        error says the message may or may not have been published (use
        :meth:`cohrt_sync.Client.publish` with an ``idempotency_key`` on a
        server that deduplicates when that matters). Many messages at once:
        :meth:`publish_many`.

        :param data: the JSON payload.
        :param event: the event type.
        :param persist: store in history (``False`` for typing indicators etc.).
        :param timeout: seconds to wait for a socket while reconnecting, and
            then for the ack (default: the client's ``ack_timeout``).
        :raises BadRequestError: bad arguments, or the server's error frame.
        :raises ServerError: the server could not persist the message.
        :raises ChannelClosedError: the channel is closed, or still
            reconnecting after ``timeout``: the message was not sent.
        :raises CohrtTimeoutError: no ack in time: it may or may not have been published.
        :raises CohrtConnectionError: the socket dropped before the ack: it
            may or may not have been published.
        """
        return self.publish_many([data], event, persist, timeout=timeout)[0]

    def publish_many(
        self,
        items: Sequence[Any],
        event: str = "message",
        persist: bool = True,
        *,
        timeout: Optional[float] = None,
    ) -> List[PublishAck]:
        """Publish each of ``items``, in order, sending every frame before awaiting the acks.

        The fastest way to publish many messages from a script: pipelined on
        one socket it needs no round trip per message (docs/client.md has the
        figures). Every item is checked before any is sent, so bad input
        publishes nothing. Waits for a reconnecting channel and raises as
        :meth:`publish` does; after a failure the items before it may have
        been published, and the ones after it were not.

        :param items: the JSON payloads.
        :param event: the event type of every item.
        :param persist: store them in history.
        :param timeout: seconds to wait for a socket while reconnecting, and
            for each next ack (default ``ack_timeout``).
        :returns: one ack per item, in order.
        """
        _fork.follow(self)
        check_event(event)
        if not isinstance(persist, bool):
            raise InvalidArgumentTypeError("persist must be a bool")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise BadRequestError("timeout must be a positive number of seconds")
        texts = [publish_frame(event, check_data(data), persist) for data in items]
        wait = self._settings.ack_timeout if timeout is None else timeout
        acks: List[PublishAck] = []
        # One deadline for finding a socket, moved on by every ack: a socket
        # that breaks as each frame goes out cannot keep a publish forever.
        open_by = time.monotonic() + wait
        while len(acks) < len(texts):
            ws, pendings = self._conn.send(texts[len(acks):], event, wait, open_by)
            try:
                got = await_acks(pendings, wait, self.name, event)
            except CohrtTimeoutError:
                self._conn.lost_ack(ws)
                raise CohrtTimeoutError(
                    f"no ack for publish on {self.name!r} within {wait}s: it may or may not have "
                    "been published; the channel is reconnecting to resync its acks (publishes "
                    "after this one wait for it)"
                ) from None
            if self._hooks.implemented("on_published"):
                for pending, ack in zip(pendings, got):
                    self._hooks.call(
                        "on_published", ack=ack, seconds=pending.settled_at - pending.sent_at
                    )
            if got:
                acks.extend(got)
                open_by = time.monotonic() + wait
        return acks

    def keepalive_tick(self, now: float) -> None:
        """Ping an idle socket; cut one whose pong is overdue (called by the client).

        :param now: ``time.monotonic()`` of this tick.
        """
        self._conn.keepalive_tick(now)

    def close(self, timeout: float = 5.0) -> None:
        """Close the socket, stop reconnecting, and join both threads.

        Idempotent and safe from any thread, including a hook of this channel.
        Frames received but not yet dispatched are dropped. Returns within
        ``timeout`` seconds whatever the server does (frozen, unreachable,
        mid-reconnect); a thread still alive then (a hook that never returns)
        is reported with a warning. Closing many channels at once:
        :func:`close_channels`.

        :param timeout: overall deadline in seconds.
        """
        close_channels([self], time.monotonic() + timeout)

    # -- closing, in steps (close_channels runs each step for every channel) ------

    def _begin_close(self, send_until: float, deadline: float) -> bool:
        """Set the closing event and start every part stopping; False if
        another close() started first. Never waits on the server."""
        with self._close_lock:
            if self._close_started:
                return False
            self._close_started = True
        self._closing.set()
        self._cut_opener()
        self._conn.begin_close(send_until, deadline)
        self._dispatcher.begin_close()
        return True

    def _cut_opener(self) -> None:
        with self._open_lock:
            opener = self._opener
            if opener is not None and opener is not threading.current_thread():
                # Under the lock that _open() clears it with, so a request the
                # caller's thread makes after subscribe() returned is never cut.
                cut_request(opener)

    def _cut(self) -> None:
        """The grace period is over: wake every part wherever it still waits."""
        self._cut_opener()
        self._conn.cut()
        self._dispatcher.cut()

    def _threads(self) -> List[threading.Thread]:
        return [t for t in (self._conn.thread, self._dispatcher.thread) if t is not None]

    def _finish_close(self) -> None:
        self._conn.end()
        current = threading.current_thread()
        reader, dispatcher = self._conn.thread, self._dispatcher.thread
        if reader is not None and reader is not current and reader.is_alive():
            # Everything a reader waits on is cut but a TCP connect in progress.
            log.warning("thread %s still running after close(); a connect the network "
                        "does not answer ends at its connect timeout", reader.name)
        if dispatcher is not None and dispatcher is not current and dispatcher.is_alive():
            log.warning("thread %s still running after close(); a hook may be stuck",
                        dispatcher.name)
        self._on_closed(self)
        self._closed_event.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the channel is closed.

        :param timeout: seconds, or ``None`` for no limit.
        :returns: True if closed.
        """
        _fork.follow(self)
        return self._closed_event.wait(timeout)

    # -- opening (by the client, in subscribe()) ---------------------------------

    def _open(self) -> None:
        """Connect, start the threads, return once subscribed."""
        with self._open_lock:
            self._opener = threading.current_thread()
        try:
            self._open_as_opener()
        finally:
            with self._open_lock:
                self._opener = None

    def _open_as_opener(self) -> None:
        self._dispatcher.begin()
        ws, presence, early = self._conn.connect()
        anchor: Optional[int] = None
        if self.catch_up:
            # Anchored only once subscribed: every row after the anchor was then
            # committed while this socket listened, so it is delivered live (or
            # recovered by a catch-up), and id-less reconciliation can match it.
            try:
                with cancel_on(self._closing):
                    anchor = catch_up_anchor(self._port, self.name)
            except BaseException:
                ws.shutdown()
                raise
        self._dispatcher.subscribed(presence, anchor)
        self._conn.start(ws, early, self._dispatcher.start)


def close_channels(channels: Sequence[Channel], deadline: float) -> None:
    """Close ``channels`` together, all against one deadline.

    Each step runs for every channel before the next, so the channels wait
    on their peers at the same time, not one after another:

    1. each channel sets its closing event, sends its close frame if it can
       go at once, fails its pending publishes and cuts a reconnect's token
       request or handshake; nothing waits on the server here, and a publish
       still sending gets :data:`SEND_GRACE` to finish before its socket is
       cut;
    2. the threads get the grace period (:data:`CLOSE_GRACE`) to end on
       their own: a reader when the server answers the close frame, a
       dispatcher when its hook returns;
    3. then every socket is shut down, which wakes a reader blocked in
       ``recv`` on a server that stopped answering, and every HTTP read
       still waited on (a catch-up's history page, a hook's request) is cut;
    4. every thread is joined until the deadline, and each channel tells
       its maker it closed.

    A channel another thread is closing already is waited for until the
    deadline, except from a thread of a channel being closed here (a hook
    calling ``client.close()``), whose own close would wait on it in turn.

    :param channels: the channels to close (closed ones are skipped).
    :param deadline: ``time.monotonic()`` by which to return.
    """
    start = time.monotonic()
    grace_end = start + min(CLOSE_GRACE, max(0.0, deadline - start) / 2)
    send_until = start + min(SEND_GRACE, max(0.0, deadline - start) / 4)
    current = threading.current_thread()
    for ch in channels:
        # In a forked child the parent's channels are let go, never closed on
        # the wire (cohrt_sync._fork); they are closed already after this.
        _fork.follow(ch)
    mine = [ch for ch in channels if ch._begin_close(send_until, deadline)]
    threads = [t for ch in mine for t in ch._threads() if t is not current]
    _join_all(threads, grace_end)
    for ch in mine:
        ch._cut()
    _join_all(threads, deadline)
    for ch in mine:
        ch._finish_close()
    if any(current in ch._threads() for ch in channels):
        return
    for ch in channels:
        if ch not in mine:
            ch._closed_event.wait(max(0.0, deadline - time.monotonic()))


def _join_all(threads: Sequence[threading.Thread], deadline: float) -> None:
    for thread in threads:
        if thread.ident is not None:  # started (a thread is made just before it starts)
            thread.join(max(0.0, deadline - time.monotonic()))
