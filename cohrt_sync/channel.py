"""One channel: its socket, a reader thread, an in-order dispatcher thread, reconnects.

Threads of a channel (both named ``cohrt-sync-…``):

* the **reader** owns the socket: it reads frames (websocket-client answers
  the server's pings inside ``recv``), settles publish acknowledgements, and
  reconnects after any drop. It never runs user code, so a slow hook cannot
  delay pong replies or acks. The client's keepalive thread sends the pings
  (:meth:`Channel.keepalive_tick`).
* the **dispatcher** takes frames from the :class:`~cohrt_sync.inbox.Inbox` and
  runs hooks, one at a time, in arrival order. It also runs the post-reconnect
  recovery from history, so the missed messages are delivered before any
  newer live frame (:mod:`cohrt_sync.dispatcher`).

Which messages reach ``on_message`` (exactly once, in order) is decided by the
:class:`~cohrt_sync.delivery.DeliveryLedger`; presence lives in a
:class:`~cohrt_sync.presence.Roster`; the handshake is
:func:`~cohrt_sync.handshake.open_socket`.

Overflow policy: when the dispatcher falls ``queue_size`` frames (or
``queue_bytes`` bytes) behind, the
reader stops reading that socket, closes it, and reconnects once the backlog
is half drained. Persisted messages that went by meanwhile are recovered from
history exactly once (the normal catch-up); non-persisted ones (``persist:
false``, e.g. typing) are lost, as they would be in any outage. Memory stays
bounded and pings are never starved by a full queue.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import attrs

from . import plugins as _plugins
from ._answers import wrong_shape
from ._cancel import cancel_on, cut_request
from .acks import AckQueue, PendingAck, await_acks
from .delivery import DeliveryLedger
from .dispatcher import FrameDispatcher
from .errors import (
    BadRequestError,
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    InvalidArgumentTypeError,
)
from .handshake import Handshake, open_socket
from .inbox import STOP, Inbox
from .models import PublishAck, User, check_data, check_event, publish_frame
from .presence import Roster
from .reader import SocketReader
from .retry import Retry

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Channel"]

log = logging.getLogger("cohrt_sync.channel")


@attrs.define(eq=False, repr=False)
class Channel(SocketReader, FrameDispatcher):
    """A live subscription to one channel; made by :meth:`cohrt_sync.Client.subscribe`.

    :param client: the owning :class:`~cohrt_sync.Client`.
    :param name: the channel name.
    :param user_id: the user id the connection tokens are minted for.
    :param user_name: the display name in presence.
    :param ttl: lifetime of each connection token, in seconds.
    :param catch_up: recover messages missed while disconnected from history.
    """

    client: Client
    name: str
    user_id: str
    user_name: Optional[str] = None
    ttl: int = 300
    catch_up: bool = True

    _roster: Roster = attrs.field(factory=Roster, init=False)
    _ledger: DeliveryLedger = attrs.field(init=False)
    _ws: Any = attrs.field(default=None, init=False)
    _send_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _acks: AckQueue = attrs.field(factory=AckQueue, init=False)
    _inbox: Inbox = attrs.field(factory=Inbox, init=False)
    _closing: threading.Event = attrs.field(factory=threading.Event, init=False)
    _closed_event: threading.Event = attrs.field(factory=threading.Event, init=False)
    _close_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _close_started: bool = attrs.field(default=False, init=False)
    _reader: Optional[threading.Thread] = attrs.field(default=None, init=False)
    _dispatcher: Optional[threading.Thread] = attrs.field(default=None, init=False)
    _reconnects: int = attrs.field(default=0, init=False)
    _last_rx: float = attrs.field(default=0.0, init=False)
    _ping_sent: Optional[float] = attrs.field(default=None, init=False)
    _dead_reason: Optional[str] = attrs.field(default=None, init=False)
    #: Why the server closed the channel for good (a paused tenant), if it did.
    _stopped_by: Optional[CohrtError] = attrs.field(default=None, init=False)
    _handshake_ws: Any = attrs.field(default=None, init=False)
    #: The thread inside subscribe() while it opens this channel; its requests
    #: (token mint, catch-up anchor) are close()'s to cut. Guarded by _send_lock.
    _opener: Optional[threading.Thread] = attrs.field(default=None, init=False)
    #: The reconnect backoff carried over while reconnects are not healthy yet.
    _backoff: Optional[Retry] = attrs.field(default=None, init=False)
    #: False from a reconnect until its catch-up succeeded.
    _healthy: bool = attrs.field(default=True, init=False)
    _hooks: _plugins.ChannelHooks = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._hooks = _plugins.ChannelHooks(self.client.plugin_manager, self, log)
        self._ledger = DeliveryLedger(
            self._catch_up_history,
            self._hooks.message,
            match_idless=self.catch_up,
            name=self.name,
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "reconnecting")
        return f"<Channel {self.name!r} user={self.user_id!r} {state}>"

    # -- public surface --------------------------------------------------------

    @property
    def presence(self) -> Dict[str, User]:
        """Users in the channel now, ``{user_id: User}`` (a copy; self included)."""
        return self._roster.snapshot()

    @property
    def roster(self) -> Roster:
        """The live presence :class:`~cohrt_sync.presence.Roster` (the built-in
        ``cohrt_sync.presence`` plugin applies joins and leaves to it)."""
        return self._roster

    @property
    def hooks(self) -> _plugins.ChannelHooks:
        """Calls hooks for this channel the way the channel does (the built-in
        ``cohrt_sync.dm`` plugin fires ``on_dm_request`` through it)."""
        return self._hooks

    @property
    def connected(self) -> bool:
        """True while the socket is open (False while reconnecting or closed)."""
        return self._ws is not None and not self._closing.is_set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing.is_set()

    @property
    def last_id(self) -> Optional[int]:
        """Highest persisted message id known delivered (the catch-up cursor)."""
        return self._ledger.last_id

    @property
    def reconnects(self) -> int:
        """How many times this channel has reconnected."""
        return self._reconnects

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

        Acks arrive in the order publishes were sent, so they are matched
        first-in first-out. A publish is never re-sent: if the connection
        drops before the ack, :class:`~cohrt_sync.CohrtConnectionError` is
        raised and the message may or may not have been applied (use
        :meth:`cohrt_sync.Client.publish` with an ``idempotency_key`` when that
        matters). Many messages at once: :meth:`publish_many`.

        :param data: the JSON payload.
        :param event: the event type.
        :param persist: store in history (``False`` for typing indicators etc.).
        :param timeout: seconds to wait for the ack (default: the client's ``ack_timeout``).
        :raises BadRequestError: bad arguments, or the server's error frame.
        :raises ServerError: the server could not persist the message.
        :raises ChannelClosedError: the channel is closed or reconnecting.
        :raises CohrtTimeoutError: no ack in time.
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
        publishes nothing. Raises as :meth:`publish` does; after a failure the
        items before it may have been published.

        :param items: the JSON payloads.
        :param event: the event type of every item.
        :param persist: store them in history.
        :param timeout: seconds to wait for each next ack (default ``ack_timeout``).
        :returns: one ack per item, in order.
        """
        check_event(event)
        if not isinstance(persist, bool):
            raise InvalidArgumentTypeError("persist must be a bool")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise BadRequestError("timeout must be a positive number of seconds")
        texts = [publish_frame(event, check_data(data), persist) for data in items]
        pendings: List[PendingAck] = []
        with self._send_lock:
            ws = self._ws
            if ws is None or self._closing.is_set():
                if self._stopped_by is not None:
                    raise self._stopped_by
                raise ChannelClosedError(
                    f"channel {self.name!r} is {'closed' if self.closed else 'reconnecting'}"
                )
            for text in texts:
                pending = PendingAck(event=event)
                # Appending under the send lock keeps the ack queue in wire order.
                self._acks.add(pending)
                try:
                    ws.send(text)
                except Exception as e:
                    self._acks.discard(pending)
                    raise CohrtConnectionError(f"could not send on {self.name!r}: {e}") from e
                pendings.append(pending)
        wait = self.client.ack_timeout if timeout is None else timeout
        try:
            acks = await_acks(pendings, wait, self.name, event)
        except CohrtTimeoutError:
            self._resync_after_lost_ack(ws)
            raise CohrtTimeoutError(
                f"no ack for publish on {self.name!r} within {wait}s; the publish may or may "
                "not have been applied, and the channel is reconnecting to resync"
            ) from None
        for pending, ack in zip(pendings, acks):
            self._hooks.call("on_published", ack=ack, seconds=pending.settled_at - pending.sent_at)
        return acks

    def _resync_after_lost_ack(self, ws: Any) -> None:
        """After an ack timeout, acks can no longer be matched in order: reconnect.

        The server acks in order, so one lost ack would make every later
        publish settle with its predecessor's ack (and time out). Cutting the
        socket fails every publish still pending on it, and the reconnect
        (with catch-up) starts a fresh, empty ack queue.
        """
        if self._ws is ws and not self._closing.is_set():
            log.warning("channel %s: an ack timed out; reconnecting to resync the acks",
                        self.name)
            self._dead_reason = "ack timeout"
            self._force_reconnect()

    def close(self, timeout: float = 5.0) -> None:
        """Close the socket, stop reconnecting, and join both threads.

        Idempotent and safe from any thread, including a hook of this channel.
        Frames received but not yet dispatched are dropped. Returns within
        about ``timeout`` seconds even mid-reconnect; a thread still alive
        then (a hook that never returns) is reported with a warning.

        :param timeout: overall deadline in seconds.
        """
        with self._close_lock:
            if self._close_started:
                first = False
            else:
                self._close_started = True
                first = True
        if not first:
            # Another thread is closing. From this channel's own thread (a hook
            # calling close() again, e.g. in on_closed) waiting would deadlock:
            # the first close() is joining this very thread.
            if threading.current_thread() not in (self._reader, self._dispatcher):
                self._closed_event.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        self._closing.set()
        with self._send_lock:
            ws, self._ws = self._ws, None
            opener = self._opener
            if opener is not None and opener is not threading.current_thread():
                # Under the lock that _open() clears it with, so a request the
                # caller's thread makes after subscribe() returned is never cut.
                cut_request(opener)
        self._acks.fail_all(ChannelClosedError(f"channel {self.name!r} closed"))
        if ws is not None:
            try:
                ws.send_close()
            except Exception:
                pass
        handshake = self._handshake_ws
        if handshake is not None and handshake.sock is not None:
            try:
                # Not abort(): that is a no-op until the handshake has completed.
                handshake.sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
        current = threading.current_thread()
        reader = self._reader
        if reader is not None and reader is not current:
            reader.join(min(0.5, max(0.0, deadline - time.monotonic())))
            if reader.is_alive():
                if ws is not None:
                    # No close reply in time: cut the socket so a blocked recv returns.
                    ws.abort()
                    ws.shutdown()
                # A reconnect's token mint that hangs.
                cut_request(reader)
            reader.join(max(0.0, deadline - time.monotonic()))
        if ws is not None:
            ws.shutdown()
        self._inbox.put(STOP)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not current:
            dispatcher.join(min(0.3, max(0.0, deadline - time.monotonic())))
            if dispatcher.is_alive():
                # Perhaps a catch-up's history read that hangs: cut it.
                cut_request(dispatcher)
            dispatcher.join(max(0.0, deadline - time.monotonic()))
        for thread in (reader, dispatcher):
            if thread is not None and thread is not current and thread.is_alive():
                log.warning("thread %s still running after close(); a hook may be stuck",
                            thread.name)
        self.client._forget(self)
        self._closed_event.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the channel is closed.

        :param timeout: seconds, or ``None`` for no limit.
        :returns: True if closed.
        """
        return self._closed_event.wait(timeout)

    # -- opening and connecting ---------------------------------------------------

    def _open(self) -> None:
        """Connect, start the threads, return once subscribed (called by the client)."""
        with self._send_lock:
            self._opener = threading.current_thread()
        try:
            self._open_as_opener()
        finally:
            with self._send_lock:
                self._opener = None

    def _open_as_opener(self) -> None:
        self._ledger.opened_at_ms = int(time.time() * 1000)
        ws, presence, early = self._connect()
        if self.catch_up:
            # Anchored only once subscribed: every row after the anchor was then
            # committed while this socket listened, so it is delivered live (or
            # recovered by a catch-up), and id-less reconciliation can match it.
            try:
                with cancel_on(self._closing):
                    self._ledger.last_id = self._anchor()
            except BaseException:
                ws.shutdown()
                raise
        self._roster.replace(presence)
        tag = f"{self.name}#{id(self) & 0xFFFF:04x}"
        # Under the send lock, which close() takes first: either close() already
        # ran (the socket is cut here) or it will see and join both threads.
        with self._send_lock:
            if self._closing.is_set():
                ws.shutdown()
                raise ChannelClosedError(f"channel {self.name!r} closed")
            self._ws = ws
            self._inbox.put(("connected",))
            for frame in early:
                self._inbox.put_frame(frame, 0)
            self._dispatcher = threading.Thread(
                target=self._dispatch_main, name=f"cohrt-sync-dispatch-{tag}", daemon=True
            )
            self._reader = threading.Thread(
                target=self._reader_main, name=f"cohrt-sync-reader-{tag}", daemon=True
            )
            self._dispatcher.start()
            self._reader.start()

    def _anchor(self) -> Optional[int]:
        """The highest persisted id on the channel once subscribed: catch-up starts after it.

        Live frames may carry no id (the cloud's don't), so the first reconnect
        could not otherwise tell where this subscription began.
        """
        try:
            rows = self.client.sql(
                "SELECT COALESCE(MAX(id), 0) AS last_id FROM realtime_messages WHERE channel = ?",
                params=[self.name],
            )
            value = rows[0].get("last_id") if rows else 0
            if value is None:
                return 0
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise wrong_shape("the catch-up anchor of subscribe (POST /edge/database)",
                                  "last_id is not a non-negative integer")
            return value
        except ChannelClosedError:
            raise
        except CohrtError as e:
            log.warning("channel %s: SQL anchor failed (%s); walking history", self.name, e)
        try:
            last = 0
            for msg in self.client.iter_history(self.name, after=0):
                last = msg.id or last
            return last
        except ChannelClosedError:
            raise
        except CohrtError as e:
            log.warning("channel %s: no catch-up anchor (%s)", self.name, e)
            return None

    def _connect(self) -> Handshake:
        def track(ws: Any) -> None:
            self._handshake_ws = ws

        # Bound to the closing event, so close() can cut a token mint that hangs.
        with cancel_on(self._closing):
            return open_socket(
                self.client, self.name, self.user_id, self.user_name, self.ttl, self._closing,
                track,
            )
