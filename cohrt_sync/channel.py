"""One channel: one WebSocket, a reader thread and an in-order dispatcher thread.

Threads of a channel (both named ``cohrt-sync-…``):

* the **reader** owns the socket: it reads frames, answers and sends pings,
  settles publish acknowledgements, and reconnects after any drop. It never
  runs user code, so a slow hook cannot delay pong replies or acks.
* the **dispatcher** takes frames from a bounded queue and runs hooks, one at
  a time, in arrival order. It also runs the post-reconnect catch-up, so the
  missed messages are delivered before any newer live frame.

Overflow policy: when the dispatcher falls ``queue_size`` frames behind, the
reader stops reading that socket, closes it, and reconnects once the backlog
is half drained. Persisted messages that went by meanwhile are recovered from
history exactly once (the normal catch-up); non-persisted ones (``persist:
false``, e.g. typing) are lost, as they would be in any outage. Memory stays
bounded and pings are never starved by a full queue.
"""

from __future__ import annotations

import collections
import json
import logging
import socket
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple

import attrs
import websocket

from . import plugins as _plugins
from ._http import redact, scrub_exception
from .errors import (
    BadRequestError,
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    InvalidArgumentTypeError,
    RateLimitedError,
    ServerError,
    error_from_response,
)
from .models import Message, PublishAck, User, check_data, check_event, fingerprint

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Channel"]

log = logging.getLogger("cohrt_sync.channel")

_STOP = ("stop",)
#: How many delivered ids / fingerprints are remembered for de-duplication.
_DEDUPE_WINDOW = 10_000
#: Id-less fingerprints kept before they are reconciled against history.
_PENDING_COMPACT_AT = 2_000
#: While history keeps showing nothing new (a channel of non-persisted
#: frames), the interval doubles up to this: each reconciliation is an HTTP
#: history read, which costs time on the dispatcher and counts against quotas.
_PENDING_COMPACT_MAX = 16_000


class _Overflow(Exception):
    """Raised inside the reader when the dispatcher queue is full."""


@attrs.define(eq=False)
class _PendingAck:
    event: str
    done: threading.Event = attrs.field(factory=threading.Event)
    frame: Optional[Dict[str, Any]] = None
    error: Optional[CohrtError] = None


def _ws_url(base_url: str, token: str, channel: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urllib.parse.urlencode({"token": token, "channel": channel})
    return urllib.parse.urlunsplit((scheme, parts.netloc, "/edge/realtime", query, ""))


def _frame_error(text: str) -> CohrtError:
    if text.startswith("Failed to persist"):
        return ServerError(text)
    return BadRequestError(text)


@attrs.define(eq=False, repr=False)
class Channel:
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

    _presence: Dict[str, User] = attrs.field(factory=dict, init=False)
    _ws: Any = attrs.field(default=None, init=False)
    _send_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _acks: Deque[_PendingAck] = attrs.field(factory=collections.deque, init=False)
    # The reader appends, the dispatcher pops: deque operations are atomic, and
    # the dispatcher is woken only when it sleeps (see _dispatch_main).
    _inbox: Deque[Tuple[Any, ...]] = attrs.field(factory=collections.deque, init=False)
    _wake: threading.Event = attrs.field(factory=threading.Event, init=False)
    _sleeping: bool = attrs.field(default=False, init=False)
    _closing: threading.Event = attrs.field(factory=threading.Event, init=False)
    _closed_event: threading.Event = attrs.field(factory=threading.Event, init=False)
    _close_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _close_started: bool = attrs.field(default=False, init=False)
    _reader: Optional[threading.Thread] = attrs.field(default=None, init=False)
    _dispatcher: Optional[threading.Thread] = attrs.field(default=None, init=False)
    # De-duplication state; touched only by the dispatcher thread after open.
    _last_id: Optional[int] = attrs.field(default=None, init=False)
    # OrderedDict, not dict: evicting a dict's oldest key with next(iter())
    # rescans its deleted slots, about 5 us per message once the window is full.
    _seen_ids: collections.OrderedDict[int, None] = attrs.field(
        factory=collections.OrderedDict, init=False
    )
    # Id-less messages delivered live since the cursor; fingerprinted lazily.
    _pending: Deque[Message] = attrs.field(factory=collections.deque, init=False)
    _compact_at: int = attrs.field(default=_PENDING_COMPACT_AT, init=False)
    _caught_up: collections.Counter[str] = attrs.field(
        factory=collections.Counter, init=False
    )
    _caught_up_until_ms: int = attrs.field(default=0, init=False)
    _catchup_failed: bool = attrs.field(default=False, init=False)
    _ids_seen: bool = attrs.field(default=False, init=False)
    _opened_at_ms: int = attrs.field(default=0, init=False)
    _reconnects: int = attrs.field(default=0, init=False)
    _last_rx: float = attrs.field(default=0.0, init=False)
    _ping_sent: Optional[float] = attrs.field(default=None, init=False)
    _dead_reason: Optional[str] = attrs.field(default=None, init=False)
    _handshake_ws: Any = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "reconnecting")
        return f"<Channel {self.name!r} user={self.user_id!r} {state}>"

    # -- public surface --------------------------------------------------------

    @property
    def presence(self) -> Dict[str, User]:
        """Users in the channel now, ``{user_id: User}`` (a copy; self included)."""
        return dict(self._presence)

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
        return self._last_id

    @property
    def reconnects(self) -> int:
        """How many times this channel has reconnected."""
        return self._reconnects

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
        matters).

        :param data: the JSON payload.
        :param event: the event type.
        :param persist: store in history (``False`` for typing indicators etc.).
        :param timeout: seconds to wait for the ack (default: the client's ``ack_timeout``).
        :raises BadRequestError: bad arguments, or the server's error frame.
        :raises ServerError: the server could not persist the message.
        :raises ChannelClosedError: the channel is closed or reconnecting.
        :raises CohrtTimeoutError: no ack in time.
        """
        check_event(event)
        encoded = check_data(data)
        if not isinstance(persist, bool):
            raise InvalidArgumentTypeError("persist must be a bool")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise BadRequestError("timeout must be a positive number of seconds")
        persist_part = "" if persist else ',"persist":false'
        text = (
            f'{{"action":"publish","event":{json.dumps(event, ensure_ascii=False)},'
            f'"data":{encoded}{persist_part}}}'
        )
        pending = _PendingAck(event=event)
        with self._send_lock:
            ws = self._ws
            if ws is None or self._closing.is_set():
                raise ChannelClosedError(
                    f"channel {self.name!r} is {'closed' if self.closed else 'reconnecting'}"
                )
            # Appending under the send lock keeps the ack queue in wire order.
            self._acks.append(pending)
            try:
                ws.send(text)
            except Exception as e:
                self._acks.remove(pending)
                raise CohrtConnectionError(f"could not send on {self.name!r}: {e}") from e
        wait = self.client.ack_timeout if timeout is None else timeout
        if not pending.done.wait(wait):
            raise CohrtTimeoutError(f"no ack for publish on {self.name!r} within {wait}s")
        if pending.error is not None:
            raise pending.error
        assert pending.frame is not None
        # The frame's event is the literal "published"; report the message's own
        # event like the HTTP ack does, and keep "published" as the action.
        return PublishAck.from_wire({**pending.frame, "event": event}, self.name, event)

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
        self._fail_acks(ChannelClosedError(f"channel {self.name!r} closed"))
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
            if reader.is_alive() and ws is not None:
                # No close reply in time: cut the socket so a blocked recv returns.
                ws.abort()
                ws.shutdown()
            reader.join(max(0.0, deadline - time.monotonic()))
        if ws is not None:
            ws.shutdown()
        self._enqueue(_STOP)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not current:
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
        self._opened_at_ms = int(time.time() * 1000)
        ws, presence, early = self._connect()
        if self.catch_up:
            # Anchored only once subscribed: every row after the anchor was then
            # committed while this socket listened, so it is delivered live (or
            # recovered by a catch-up). Anchoring first left a gap whose rows
            # id-less reconciliation could never match.
            try:
                self._last_id = self._anchor()
            except BaseException:
                ws.shutdown()
                raise
        self._presence = {u.id: u for u in presence}
        tag = f"{self.name}#{id(self) & 0xFFFF:04x}"
        # Under the send lock, which close() takes first: either close() already
        # ran (the socket is cut here) or it will see and join both threads.
        with self._send_lock:
            if self._closing.is_set():
                ws.shutdown()
                raise ChannelClosedError(f"channel {self.name!r} closed")
            self._ws = ws
            self._enqueue(("connected",))
            for frame in early:
                self._enqueue(("frame", frame))
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
            return int(value or 0)
        except CohrtError as e:
            log.warning("channel %s: SQL anchor failed (%s); walking history", self.name, e)
        try:
            last = 0
            for msg in self.client.iter_history(self.name, after=0):
                last = msg.id or last
            return last
        except CohrtError as e:
            log.warning("channel %s: no catch-up anchor (%s)", self.name, e)
            return None

    def _connect(self) -> Tuple[Any, List[User], List[Dict[str, Any]]]:
        """Mint a fresh token, open the socket, read up to ``subscribed``."""
        client = self.client
        token = client.mint_token(self.user_id, name=self.user_name, ttl=self.ttl)
        url = _ws_url(client.base_url, token.token, self.name)
        # Decoding each text frame to str validates UTF-8 already; the library's
        # own per-byte check would cost most of the receive time (see STYLE.md).
        ws: Any = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        # close() aborts a handshake in progress instead of waiting it out.
        self._handshake_ws = ws
        if self._closing.is_set():
            raise ChannelClosedError(f"channel {self.name!r} closed")
        timeout = client.connect_timeout
        context = f"subscribe to {self.name!r}"
        try:
            ws.connect(url, timeout=timeout, suppress_origin=True)
        except websocket.WebSocketBadStatusException as e:
            ws.shutdown()
            raise error_from_response(
                e.status_code, e.resp_body or b"", e.resp_headers or {}, context=context
            ) from scrub_exception(e)
        except (websocket.WebSocketTimeoutException, TimeoutError) as e:
            ws.shutdown()
            raise CohrtTimeoutError(f"{context} timed out") from scrub_exception(e)
        except (websocket.WebSocketException, OSError) as e:
            ws.shutdown()
            if self._closing.is_set():
                raise ChannelClosedError(f"channel {self.name!r} closed") from scrub_exception(e)
            scrub_exception(e)
            raise CohrtConnectionError(f"{context} failed: {redact(str(e))}") from e
        if self._closing.is_set():
            # close() came while connect() had no socket yet to shut down.
            ws.shutdown()
            raise ChannelClosedError(f"channel {self.name!r} closed")
        deadline = time.monotonic() + timeout
        early: List[Dict[str, Any]] = []
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CohrtTimeoutError(f"{context}: no 'subscribed' within {timeout}s")
                ws.settimeout(remaining)
                raw = ws.recv()
                if not raw:
                    raise CohrtConnectionError(f"{context}: server closed during handshake")
                frame = json.loads(raw)
                if not isinstance(frame, dict):
                    continue
                if "error" in frame and "action" not in frame:
                    raise _frame_error(str(frame["error"]))
                action = frame.get("action")
                if action == "subscribed":
                    users = [User.from_wire(u) for u in frame.get("presence") or []]
                    break
                if action != "connected":
                    early.append(frame)
        except CohrtError:
            ws.shutdown()
            raise
        except websocket.WebSocketTimeoutException as e:
            ws.shutdown()
            raise CohrtTimeoutError(f"{context}: no 'subscribed' within {timeout}s") from e
        except (websocket.WebSocketException, OSError, ValueError) as e:
            ws.shutdown()
            raise CohrtConnectionError(f"{context} failed: {e}") from e
        # A blocking socket: a read timeout would add a poll() and a GIL round
        # trip to every recv. Pings and dead-peer detection run on the client's
        # keepalive thread instead (see keepalive_tick).
        ws.settimeout(None)
        self._handshake_ws = None
        return ws, users, early

    # -- reader thread ----------------------------------------------------------

    def _reader_main(self) -> None:
        ws = self._ws
        try:
            while ws is not None and not self._closing.is_set():
                reason = self._read_until_drop(ws)
                with self._send_lock:
                    if self._ws is ws:
                        self._ws = None
                self._fail_acks(
                    CohrtConnectionError(
                        f"connection to {self.name!r} lost before the ack; "
                        "the publish may or may not have been applied"
                    )
                )
                ws.shutdown()
                if self._closing.is_set():
                    break
                log.debug("channel %s dropped: %s", self.name, reason)
                self._post_control(("disconnected", reason))
                ws = self._reconnect()
        except Exception:
            log.exception("channel %s: reader crashed", self.name)

    def _read_until_drop(self, ws: Any) -> str:
        self._last_rx = time.monotonic()
        self._ping_sent = None
        self._dead_reason = None
        while not self._closing.is_set():
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except (websocket.WebSocketException, OSError, AttributeError) as e:
                # AttributeError: websocket-client after shutdown() has sock=None.
                return self._dead_reason or f"connection lost: {type(e).__name__}"
            self._last_rx = time.monotonic()
            self._ping_sent = None
            if opcode == websocket.ABNF.OPCODE_TEXT:
                try:
                    self._on_text(data)
                except _Overflow:
                    return "dispatcher overflow"
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                code = None
                payload = data if isinstance(data, bytes) else getattr(data, "data", b"")
                if len(payload) >= 2:
                    code = int.from_bytes(payload[:2], "big")
                return f"server closed ({code})"
        return "closed"

    def keepalive_tick(self, now: float) -> None:
        """Ping an idle socket; cut one whose pong is overdue (called by the client).

        :param now: ``time.monotonic()`` of this tick.
        """
        ws = self._ws
        if ws is None or self._closing.is_set():
            return
        client = self.client
        sent = self._ping_sent
        if sent is not None:
            if now - sent > client.ping_timeout:
                log.info("channel %s: no pong within %ss", self.name, client.ping_timeout)
                self._dead_reason = "ping timeout"
                self._force_reconnect()
        elif now - self._last_rx >= client.ping_interval:
            self._ping_sent = now
            try:
                ws.ping()
            except Exception:
                self._force_reconnect()

    def _on_text(self, data: bytes) -> None:
        try:
            frame = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            log.warning("channel %s: dropped a frame that is not JSON", self.name)
            return
        if not isinstance(frame, dict):
            return
        action = frame.get("action")
        if action == "published":
            self._settle_ack(frame, None)
            return
        if action is None and "error" in frame:
            err = _frame_error(str(frame["error"]))
            if not self._settle_ack(None, err):
                self._post_control(("error", err))
            return
        if len(self._inbox) >= self.client.queue_size:
            log.warning(
                "channel %s: dispatcher is %d frames behind; reconnecting to catch up",
                self.name,
                self.client.queue_size,
            )
            raise _Overflow()
        self._inbox.append(("frame", frame))
        if self._sleeping:
            self._wake.set()

    def _settle_ack(self, frame: Optional[Dict[str, Any]], error: Optional[CohrtError]) -> bool:
        try:
            pending = self._acks.popleft()
        except IndexError:
            return False
        pending.frame = frame
        pending.error = error
        pending.done.set()
        return True

    def _fail_acks(self, error: CohrtError) -> None:
        while True:
            try:
                pending = self._acks.popleft()
            except IndexError:
                return
            pending.error = error
            pending.done.set()

    def _enqueue(self, item: Tuple[Any, ...]) -> None:
        # Control items are few (one per connection event) and never dropped.
        self._inbox.append(item)
        if self._sleeping:
            self._wake.set()

    _post_control = _enqueue

    def _reconnect(self) -> Any:
        client = self.client
        policy = client.reconnect_backoff.reset()
        retry_after: Optional[float] = None
        attempts = 0
        while not self._closing.is_set():
            policy = policy.increment(retry_after=retry_after)
            retry_after = None
            if self._closing.wait(policy.get_backoff()):
                return None
            # After an overflow, wait for the backlog to halve before reading more.
            while len(self._inbox) > client.queue_size // 2:
                if self._closing.wait(0.05):
                    return None
            attempts += 1
            try:
                ws, presence, early = self._connect()
            except CohrtError as e:
                if self._closing.is_set():
                    return None
                if isinstance(e, RateLimitedError):
                    retry_after = e.retry_after
                log.warning("channel %s: reconnect attempt %d failed: %s", self.name, attempts, e)
                self._post_control(("error", e))
                continue
            with self._send_lock:
                if self._closing.is_set():
                    ws.shutdown()
                    return None
                self._ws = ws
            self._reconnects += 1
            self._post_control(("reconnected", presence, attempts))
            for frame in early:
                self._post_control(("frame", frame))
            return ws
        return None

    # -- dispatcher thread ---------------------------------------------------------

    def _dispatch_main(self) -> None:
        """Run hooks for queued items in order.

        Waking a sleeping thread costs far more than a hook call, so after a
        burst (more than one item per wake-up) the dispatcher lingers for
        ``client.dispatch_linger`` seconds to collect the next batch instead of
        being woken for every frame. A lone frame still wakes it at once, so
        latency at low rates is unaffected.
        """
        inbox = self._inbox
        linger = self.client.dispatch_linger
        batch = 0
        try:
            while not self._closing.is_set():
                try:
                    item = inbox.popleft()
                except IndexError:
                    if batch > 1 and linger > 0:
                        batch = 0
                        time.sleep(linger)
                        continue
                    batch = 0
                    self._wake.clear()
                    self._sleeping = True
                    # Re-check after announcing sleep: the reader appends, then looks.
                    if not inbox:
                        self._wake.wait()
                    self._sleeping = False
                    continue
                if item is _STOP:
                    break
                batch += 1
                try:
                    self._dispatch(item)
                except Exception:
                    log.exception("channel %s: internal error dispatching %s", self.name, item[0])
        finally:
            if self._closing.is_set():
                self._call_hook("on_closed")

    def _dispatch(self, item: Tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "frame":
            self._dispatch_frame(item[1])
        elif kind == "connected":
            self._call_hook("on_connected")
        elif kind == "disconnected":
            self._call_hook("on_disconnected", reason=item[1])
        elif kind == "reconnected":
            caught = self._catch_up() if self.catch_up else 0
            self._resync_presence(item[1])
            self._call_hook("on_reconnected", attempts=item[2], caught_up=caught)
        elif kind == "error":
            self._call_hook("on_error", error=item[1])

    def _dispatch_frame(self, frame: Dict[str, Any]) -> None:
        action = frame.get("action")
        if action == "join":
            user = User.from_wire(frame.get("user"))
            if user.id in self._presence:
                self._presence[user.id] = user
            else:
                self._call_hook("on_join", user=user)
        elif action == "leave":
            last_seen = frame.get("last_seen")
            user = User.from_wire(frame.get("user"), last_seen=last_seen)
            if user.id in self._presence:
                self._call_hook("on_leave", user=user, last_seen=last_seen)
        elif action in ("connected", "subscribed"):
            return
        elif self._catchup_failed:
            # Newer than a gap we could not fill: the next catch-up recovers it in order.
            return
        else:
            self._deliver_live(Message.from_wire(frame, self.name))

    # -- exactly-once delivery ----------------------------------------------------------

    def _remember_id(self, msg_id: int) -> None:
        self._seen_ids[msg_id] = None
        if len(self._seen_ids) > _DEDUPE_WINDOW:
            self._seen_ids.popitem(last=False)
        if self._last_id is None or msg_id > self._last_id:
            self._last_id = msg_id

    def _deliver_live(self, msg: Message) -> None:
        if msg.id is not None:
            if not self._ids_seen:
                self._ids_seen = True
                self._pending.clear()
            if msg.id in self._seen_ids:
                return
            self._remember_id(msg.id)
            self._emit(msg)
            return
        if self._ids_seen:
            # This server puts ids on persisted frames, so an id-less one was
            # never persisted: history cannot hold it, nothing to reconcile.
            self._emit(msg)
            return
        if self._caught_up:
            created = msg.created_at_ms
            if created is not None and created > self._caught_up_until_ms:
                # Live frames are now newer than anything the catch-up delivered.
                self._caught_up.clear()
            else:
                fp = fingerprint(msg.event, msg.data, msg.created_at_ms)
                if self._caught_up[fp] > 0:
                    # Already delivered from history during the last catch-up.
                    self._caught_up[fp] -= 1
                    return
        if self.catch_up:
            self._pending.append(msg)
        self._emit(msg)
        if len(self._pending) >= self._compact_at:
            self._compact_pending()

    def _pending_index(self) -> collections.Counter[str]:
        return collections.Counter(
            fingerprint(m.event, m.data, m.created_at_ms) for m in self._pending
        )

    def _compact_pending(self) -> None:
        """Give id-less live deliveries their ids by matching them in history.

        Walks history after the cursor in id order; each row whose fingerprint
        was delivered live advances the cursor. The walk stops at the first
        row not seen live yet (its frame is still queued). Pending messages
        older than the last match were never persisted (``persist: false``).
        """
        # Fingerprints cost a JSON encoding each: make them only once history
        # has a row to match (a channel of non-persisted frames never does).
        fps: List[str] = []
        counts: Optional[collections.Counter[str]] = None
        matched: collections.Counter[str] = collections.Counter()
        last_match_ms: Optional[int] = None
        try:
            for item in self.client.iter_history(self.name, after=self._last_id or 0):
                assert item.id is not None
                if item.id in self._seen_ids:
                    continue
                if counts is None:
                    self._compact_at = _PENDING_COMPACT_AT
                    fps = [fingerprint(m.event, m.data, m.created_at_ms) for m in self._pending]
                    counts = collections.Counter(fps)
                fp = fingerprint(item.event, item.data, item.created_at_ms)
                if counts[fp] <= 0:
                    break
                counts[fp] -= 1
                matched[fp] += 1
                self._remember_id(item.id)
                last_match_ms = item.created_at_ms
        except CohrtError as e:
            log.warning("channel %s: could not reconcile live messages: %s", self.name, e)
        if counts is None:
            # Nothing persisted after the cursor: wait longer before asking again.
            self._compact_at = min(self._compact_at * 2, _PENDING_COMPACT_MAX)
        if not matched:
            survivors = self._pending
        else:
            survivors = collections.deque()
            for m, fp in zip(self._pending, fps):
                if matched[fp] > 0:
                    matched[fp] -= 1
                    continue
                if last_match_ms is not None and (m.created_at_ms or 0) < last_match_ms:
                    continue
                survivors.append(m)
        while len(survivors) > _PENDING_COMPACT_AT // 2:
            # Bounded memory wins over reconciling very old non-persisted frames.
            survivors.popleft()
        self._pending = survivors

    def _catch_up(self) -> int:
        """Deliver what history has after the cursor and was not delivered live.

        Runs on the dispatcher before any frame of the new socket, so missed
        messages come first, in id order. Rows whose fingerprint was delivered
        live without an id are matched and skipped. On failure the frames that
        follow are dropped until a fresh connection's catch-up succeeds, which
        keeps order and exactly-once at the price of one more reconnect.
        """
        self._caught_up.clear()
        self._caught_up_until_ms = 0
        after = self._last_id
        delivered = 0
        min_created = None if after is not None else self._opened_at_ms
        counts = self._pending_index()
        try:
            for item in self.client.iter_history(self.name, after=after or 0):
                assert item.id is not None
                if self._closing.is_set():
                    # close() drops what is not dispatched yet; so does a catch-up.
                    return delivered
                if item.id in self._seen_ids:
                    continue
                fp = fingerprint(item.event, item.data, item.created_at_ms)
                self._remember_id(item.id)
                if counts[fp] > 0:
                    counts[fp] -= 1  # delivered live before the drop
                    continue
                if min_created is not None and (item.created_at_ms or 0) < min_created:
                    continue
                self._caught_up[fp] += 1
                self._caught_up_until_ms = max(self._caught_up_until_ms, item.created_at_ms or 0)
                self._emit(item)
                delivered += 1
        except CohrtError as e:
            log.warning("channel %s: catch-up failed (%s); reconnecting again", self.name, e)
            self._call_hook("on_error", error=e)
            self._catchup_failed = True
            self._force_reconnect()
            return delivered
        self._catchup_failed = False
        # Everything received live before the drop was committed before it was
        # broadcast, so unmatched pending messages were never persisted.
        self._pending.clear()
        return delivered

    def _force_reconnect(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                # shutdown(SHUT_RDWR) wakes the reader's blocking recv with an error.
                ws.abort()
            except Exception:
                pass

    def _resync_presence(self, users: List[User]) -> None:
        fresh = {u.id: u for u in users}
        for uid, user in list(self._presence.items()):
            if uid not in fresh:
                self._call_hook("on_leave", user=user, last_seen=None)
        for uid, user in fresh.items():
            if uid not in self._presence:
                self._call_hook("on_join", user=user)
        self._presence = fresh

    # -- hooks -------------------------------------------------------------------------

    def _emit(self, message: Message) -> None:
        self._call_hook("on_message", message=message)

    def _call_hook(self, name: str, **kwargs: Any) -> None:
        kwargs["channel"] = self
        _plugins.call_hook(self.client.plugin_manager, name, kwargs, self._hook_failed)

    def _hook_failed(self, where: str, error: BaseException) -> None:
        log.exception("channel %s: hook %s raised", self.name, where)
        if where.endswith(".on_error") or where == "on_error":
            return
        _plugins.call_hook(
            self.client.plugin_manager,
            "on_error",
            {"channel": self, "error": error},
            lambda w, e: log.exception("channel %s: hook %s raised", self.name, w),
        )

    def _presence_set(self, user: User) -> None:
        self._presence[user.id] = user

    def _presence_remove(self, user_id: str) -> None:
        self._presence.pop(user_id, None)
