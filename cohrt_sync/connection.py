"""The socket side of a channel: its socket, the reader thread, acks, keepalive and reconnect.

A :class:`Connection` owns the socket. Its reader thread reads frames,
settles publish acknowledgements, hands every other frame to the channel's
:class:`~cohrt_sync.inbox.Inbox`, and reconnects after any drop. It never
runs user code, so a slow hook cannot delay pong replies (websocket-client
answers pings inside ``recv``) or acks. Pings and dead-peer detection are
driven by the client's keepalive thread through
:meth:`Connection.keepalive_tick`.

It is given what it needs: the channel's identity, a
:class:`~cohrt_sync.settings.ChannelSettings`, the
:class:`~cohrt_sync.port.HttpPort` that mints tokens, the inbox it feeds,
and the channel's closing event. What happens on the socket reaches the
dispatcher as items in the inbox: ``("connected",)``, ``("disconnected",
reason)``, ``("reconnected", presence, attempts)``, ``("error", error)`` and
``("gave_up", error)``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs
import websocket

from . import _ws
from ._cancel import cancel_on, cut_request
from ._latch import Flag
from .acks import AckQueue, PendingAck
from .errors import (
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    NotProvisionedError,
    RateLimitedError,
    error_from_frame,
)
from .handshake import Handshake, open_socket
from .inbox import Inbox
from .port import HttpPort
from .retry import Retry
from .settings import ChannelSettings

__all__ = ["Connection"]

log = logging.getLogger("cohrt_sync.channel")


class _Overflow(Exception):
    """Raised inside the reader when the dispatcher queue is full."""


class Connection:
    """The socket of one channel, kept open until the channel closes.

    :param name: the channel name.
    :param user_id: the user each connection token is minted for.
    :param user_name: the display name in presence.
    :param ttl: lifetime of each connection token, in seconds.
    :param settings: the channel's settings.
    :param port: mints the connection tokens.
    :param inbox: where frames and socket events go, for the dispatcher.
    :param closing: set when the channel closes; everything here stops then.
    :param tag: the channel's tag in thread names.
    """

    __slots__ = (
        "_acks",
        "_backoff",
        "_closing",
        "_closing_ws",
        "_cut",
        "_dead_reason",
        "_handshake_ws",
        "_healthy",
        "_inbox",
        "_last_rx",
        "_opened",
        "_ping_sent",
        "_port",
        "_reconnects",
        "_send_lock",
        "_settings",
        "_stopped_by",
        "_tag",
        "_thread",
        "_ttl",
        "_user_id",
        "_user_name",
        "_ws",
        "name",
    )

    def __init__(
        self,
        name: str,
        user_id: str,
        user_name: Optional[str],
        ttl: int,
        settings: ChannelSettings,
        port: HttpPort,
        inbox: Inbox,
        closing: Flag,
        tag: str,
    ) -> None:
        self.name = name
        self._user_id = user_id
        self._user_name = user_name
        self._ttl = ttl
        self._settings = settings
        self._port = port
        self._inbox = inbox
        self._closing = closing
        self._tag = tag
        self._ws: Any = None
        #: The socket force_reconnect() cut, until the reader lets it go: no
        #: publish is sent on it, one waits for the next socket instead.
        self._cut: Any = None
        self._send_lock = threading.Lock()
        #: Notified (under the send lock) when a socket opens, and when the
        #: reader stops for good: wakes the publishes waiting for a socket.
        #: Made by the first publish that waits (under the send lock): most
        #: channels never need one, and a Condition is 1.1 KiB.
        self._opened: Optional[threading.Condition] = None
        #: The publishes awaiting an ack on the current socket. Acks are per
        #: socket: each socket gets a new queue, and the old one's pending
        #: publishes fail with it, so no late ack settles a later publish.
        self._acks = AckQueue()
        self._thread: Optional[threading.Thread] = None
        self._reconnects = 0
        self._last_rx = 0.0
        self._ping_sent: Optional[float] = None
        self._dead_reason: Optional[str] = None
        #: Why the channel stopped for good, if it did: the server closed it (a
        #: paused tenant), or the reconnects gave up or were refused.
        self._stopped_by: Optional[CohrtError] = None
        self._handshake_ws: Any = None
        #: The socket that was open when close() began, until it is let go.
        self._closing_ws: Any = None
        #: The reconnect backoff carried over while reconnects are not healthy yet.
        self._backoff: Optional[Retry] = None
        #: False from a reconnect until its catch-up succeeded.
        self._healthy = True

    # -- state -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the socket is open (False while reconnecting or closed)."""
        ws = self._ws
        return ws is not None and ws is not self._cut and not self._closing.is_set()

    @property
    def reconnects(self) -> int:
        """How many times the socket has reconnected."""
        return self._reconnects

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The reader thread, once started."""
        return self._thread

    # -- opening ---------------------------------------------------------------

    def connect(self) -> Handshake:
        """Mint a token, open a socket and read up to ``subscribed``.

        :raises CohrtError: as :func:`~cohrt_sync.handshake.open_socket` does.
        """

        def track(ws: Any) -> None:
            self._handshake_ws = ws

        # Bound to the closing event, so close() can cut a token mint that hangs.
        with cancel_on(self._closing):
            return open_socket(
                self._port, self._settings, self.name, self._user_id, self._user_name,
                self._ttl, self._closing, track,
            )

    def start(self, ws: Any, early: Sequence[Dict[str, Any]],
              start_dispatcher: Callable[[], None]) -> None:
        """Adopt the first subscribed socket and start reading it.

        Under the send lock, which :meth:`stop` takes first: either the
        channel closed already (the socket is cut here) or its ``close()``
        will see both threads and join them.

        :param ws: the subscribed socket.
        :param early: frames that arrived before ``subscribed``.
        :param start_dispatcher: starts the dispatcher's thread.
        :raises ChannelClosedError: the channel closed meanwhile.
        """
        with self._send_lock:
            if self._closing.is_set():
                ws.shutdown()
                raise ChannelClosedError(f"channel {self.name!r} closed")
            self._ws = ws
            self._acks = AckQueue()
            self._inbox.put(("connected",))
            for frame in early:
                self._inbox.put_frame(frame, 0)
            start_dispatcher()
            self._thread = threading.Thread(
                target=self._reader_main, name=f"cohrt-sync-reader-{self._tag}", daemon=True
            )
            self._thread.start()

    # -- publishing ----------------------------------------------------------

    def send(
        self, texts: Sequence[str], event: str, wait: float, open_by: Optional[float] = None
    ) -> Tuple[Any, List[PendingAck]]:
        """Send publish frames, each with its pending ack queued in wire order.

        While the channel reconnects (a drop, an ack timeout's resync), waits
        up to ``wait`` seconds for the next socket, as Socket.IO and Ably
        clients do. Frames go out until one cannot be sent: the socket is
        broken then, so it is cut (the reader reconnects), and neither that
        frame nor the ones after it were sent. A frame that did not go out
        whole cannot have been applied, so the caller may send them again.

        :param texts: the frames.
        :param event: their event, for the acks.
        :param wait: seconds to wait for an open socket (the publish's timeout).
        :param open_by: ``time.monotonic()`` by which a socket must be open,
            when the wait began earlier (default: ``wait`` from now).
        :returns: the socket they went out on, and one pending ack per frame
            sent: all of them, or the ones before the frame that failed.
        :raises ChannelClosedError: closed, or still reconnecting after
            ``wait`` seconds (nothing was sent).
        :raises CohrtError: why the channel stopped for good (a paused
            tenant, the reconnects gave up); nothing was sent.
        """
        pendings: List[PendingAck] = []
        with self._send_lock:
            ws = self._ws
            if ws is None or ws is self._cut or self._closing.is_set():
                ws = self._wait_open(wait, time.monotonic() + wait if open_by is None else open_by)
            acks = self._acks
            for text in texts:
                pending = PendingAck(event=event)
                # Appending under the send lock keeps the ack queue in wire order.
                acks.add(pending)
                try:
                    ws.send(text)
                except Exception as e:
                    acks.discard(pending)
                    log.info("channel %s: could not send a publish (%s); reconnecting to send it",
                             self.name, type(e).__name__)
                    self._dead_reason = "send failed"
                    self.force_reconnect()
                    break
                pendings.append(pending)
        return ws, pendings

    def _wait_open(self, wait: float, deadline: float) -> Any:
        """The open socket, once there is one (called under the send lock)."""
        while True:
            if self._stopped_by is not None:
                raise self._stopped_by
            if self._closing.is_set():
                raise ChannelClosedError(f"channel {self.name!r} is closed; nothing was sent")
            ws = self._ws
            if ws is not None and ws is not self._cut:
                return ws
            reader = self._thread
            if reader is None or not reader.is_alive():
                raise ChannelClosedError(
                    f"channel {self.name!r} stopped reconnecting; nothing was sent"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelClosedError(
                    f"channel {self.name!r} is still reconnecting after {wait:g}s, so the "
                    "message was not sent: publish it again once the channel is connected"
                )
            # Woken when a socket opens or the reader stops; the slice bounds
            # how late a close() that no one notifies is seen.
            opened = self._opened
            if opened is None:
                opened = self._opened = threading.Condition(self._send_lock)
            opened.wait(min(left, 0.25))

    def lost_ack(self, ws: Any) -> None:
        """After an ack timeout, acks can no longer be matched in order: reconnect.

        The server acks in order, so one lost ack would make every later
        publish settle with its predecessor's ack (and time out). Cutting the
        socket fails every publish still pending on it, and the reconnect
        (with catch-up) starts a fresh, empty ack queue.

        :param ws: the socket the publish went out on.
        """
        if self._ws is ws and not self._closing.is_set():
            log.warning("channel %s: an ack timed out; reconnecting to resync the acks",
                        self.name)
            self._dead_reason = "ack timeout"
            self.force_reconnect()

    # -- keepalive and reconnect ----------------------------------------------

    def keepalive_tick(self, now: float) -> None:
        """Ping an idle socket; cut one whose pong is overdue.

        :param now: ``time.monotonic()`` of this tick.
        """
        ws = self._ws
        if ws is None or self._closing.is_set():
            return
        settings = self._settings
        sent = self._ping_sent
        if sent is not None:
            if now - sent > settings.ping_timeout:
                # Also the read stall limit: a frame trickled in (or stuck) for
                # this long keeps the pong unread, so the socket is cut.
                log.info("channel %s: no pong within %ss", self.name, settings.ping_timeout)
                self._dead_reason = "ping timeout"
                self.force_reconnect()
        elif now - self._last_rx >= settings.ping_interval:
            self._ping_sent = now
            try:
                ws.ping()
            except Exception as e:
                log.info("channel %s: ping failed (%s)", self.name, type(e).__name__)
                self._dead_reason = "ping failed"
                self.force_reconnect()

    def force_reconnect(self) -> None:
        """Cut the socket; the reader then reports the drop and reconnects.

        From now on publishes wait for the next socket rather than go out on
        this one (not under the send lock: a publish blocked in a send must
        not keep a dead socket from being cut).
        """
        ws = self._ws
        if ws is not None:
            self._cut = ws
            try:
                # shutdown(SHUT_RDWR) wakes the reader's blocking recv with an error.
                ws.abort()
            except Exception:
                pass

    def mark_healthy(self) -> None:
        """The last reconnect's catch-up succeeded: the next one starts its backoff afresh."""
        self._healthy = True

    # -- closing -----------------------------------------------------------------

    def begin_close(self, send_until: float, deadline: float) -> None:
        """Say goodbye on the socket, fail pending publishes, cut a request in flight.

        The first step of the channel's ``close()``, once the closing event is
        set; it never waits on the peer. A close frame goes out if it can go
        at once, and the reader then reads the peer's reply and ends. A
        reconnect's token request or socket handshake has nothing graceful to
        wait for, so it is cut now. Whatever still waits on the peer later is
        :meth:`cut`.

        :param send_until: ``time.monotonic()`` until which a publish still
            sending may finish before its socket is cut.
        :param deadline: ``time.monotonic()`` by which the channel must be closed.
        """
        ws = self._take_socket(send_until, deadline)
        self._closing_ws = ws
        self._acks.fail_all(ChannelClosedError(f"channel {self.name!r} closed"))
        if ws is not None:
            _ws.say_goodbye(ws)
        self._cut_handshake()

    def cut(self) -> None:
        """Wake the reader wherever it waits: its socket, a handshake, a token request.

        Shutting the socket down wakes a ``recv`` (or a ``send``) blocked on a
        peer that stopped answering, which no flag of websocket-client does
        once a close frame was sent (see :func:`cohrt_sync._ws.cut`).
        """
        ws = self._closing_ws
        if ws is not None:
            _ws.cut(ws)
        self._cut_handshake()

    def end(self) -> None:
        """Let the socket's file descriptor go, once the reader was joined (or given up on)."""
        ws, self._closing_ws = self._closing_ws, None
        if ws is not None:
            ws.shutdown()

    def _take_socket(self, send_until: float, deadline: float) -> Any:
        """The open socket, taken under the send lock so no publish starts on it after.

        A publish still sending at ``send_until`` holds the send lock, perhaps
        stuck on a peer that stopped reading: its socket is cut, which fails
        that send and frees the lock. Past the deadline the socket is taken
        without the lock.
        """
        lock = self._send_lock
        locked = lock.acquire(timeout=max(0.0, send_until - time.monotonic()))
        if not locked:
            ws = self._ws
            if ws is not None:
                _ws.cut(ws)
            locked = lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        try:
            ws, self._ws = self._ws, None
        finally:
            if locked:
                lock.release()
        return ws

    def _cut_handshake(self) -> None:
        handshake = self._handshake_ws
        if handshake is not None:
            _ws.cut(handshake)
        reader = self._thread
        if reader is not None and reader is not threading.current_thread() and reader.is_alive():
            # A reconnect's token mint, the only HTTP request a reader makes
            # (alive only: a finished thread's ident may be another thread's now).
            cut_request(reader)

    def release_after_fork(self, why: CohrtError) -> None:
        """In a forked child: let the parent's socket go without a word on it.

        No close frame and no ``shutdown()``, either of which would end the
        parent's connection (the socket is shared); only this process's
        descriptor is closed. The reader thread is the parent's and does not
        run here. From now on :meth:`send` raises ``why``.

        :param why: what a publish in this process raises.
        """
        self._send_lock = threading.Lock()
        self._acks = AckQueue()
        self._stopped_by = why
        ws, self._ws = self._ws, None
        handshake, self._handshake_ws = self._handshake_ws, None
        for held in (ws, handshake):
            if held is not None:
                _ws.release(held)

    # -- the reader thread -----------------------------------------------------

    def _reader_main(self) -> None:
        try:
            self._read_each_socket()
        finally:
            # Publishes waiting for a socket learn there will be none.
            self._notify_opened()

    def _notify_opened(self) -> None:
        with self._send_lock:
            if self._opened is not None:
                self._opened.notify_all()

    def _read_each_socket(self) -> None:
        with self._send_lock:
            ws, acks = self._ws, self._acks
        while ws is not None and not self._closing.is_set():
            try:
                reason = self._read_until_drop(ws, acks)
            except Exception as e:
                # A bug, or a frame no decoder survives (200 KB of nested "["):
                # a reported drop, then the usual reconnect and catch-up.
                reason = self._report_crash("reading a frame", e)
            try:
                go_on = self._after_drop(ws, acks, reason)
            except Exception as e:
                self._report_crash("dropping the socket", e)
                go_on = not self._closing.is_set()
            ws = self._reconnect_guarded() if go_on else None
            acks = self._acks

    def _reconnect_guarded(self) -> Any:
        while not self._closing.is_set():
            try:
                return self._reconnect()
            except Exception as e:
                self._report_crash("reconnecting", e)
                if self._closing.wait(1.0):
                    break
        return None

    def _report_crash(self, doing: str, exc: Exception) -> str:
        log.error("channel %s: internal error %s; reconnecting", self.name, doing,
                  exc_info=exc)
        err = CohrtConnectionError(
            f"channel {self.name!r}: internal error {doing} ({type(exc).__name__}); "
            "dropped the socket and reconnecting with catch-up"
        )
        err.__cause__ = exc
        self._inbox.put(("error", err))
        return f"internal error: {type(exc).__name__}"

    def _after_drop(self, ws: Any, acks: AckQueue, reason: str) -> bool:
        """Let the dropped socket go and report the drop; False: do not reconnect.

        Its pending publishes fail with it: each was sent and may have been
        applied, so none is sent again (docs/client.md, "Publishing while
        the channel reconnects").
        """
        with self._send_lock:
            if self._ws is ws:
                self._ws = None
            if self._cut is ws:
                self._cut = None
        stopped_by = self._stopped_by
        acks.fail_all(
            stopped_by
            or CohrtConnectionError(
                f"connection to {self.name!r} lost before the ack: the message may or may not "
                "have been published; look for it in history before publishing it again"
            )
        )
        ws.shutdown()
        if self._closing.is_set():
            return False
        log.debug("channel %s dropped: %s", self.name, reason)
        self._inbox.put(("disconnected", reason))
        if stopped_by is not None:
            # The server said why it closed, and no reconnect can help.
            log.warning("channel %s: closed by the server, not reconnecting: %s",
                        self.name, stopped_by)
            self._inbox.put(("gave_up", stopped_by))
            return False
        return True

    def _read_until_drop(self, ws: Any, acks: AckQueue) -> str:
        # Acks are matched as they are read and their publishers woken just
        # before the next socket read (see cohrt_sync.acks), and on the way
        # out whatever ends the loop.
        frames = ws.frame_buffer
        frames.before_read = acks.wake_settled
        try:
            return self._read_frames(ws, acks)
        finally:
            frames.before_read = None
            acks.wake_settled()

    def _read_frames(self, ws: Any, acks: AckQueue) -> str:
        self._last_rx = time.monotonic()
        self._ping_sent = None
        self._dead_reason = None
        # Bound once: the loop runs for every frame.
        is_closing = self._closing.is_set
        recv_data = ws.recv_data
        monotonic = time.monotonic
        text = websocket.ABNF.OPCODE_TEXT
        while not is_closing():
            try:
                opcode, data = recv_data(control_frame=True)
            except _ws.MessageTooLarge as e:
                log.warning("channel %s: %s; reconnecting", self.name, e)
                self._inbox.put(("error", _ws.too_large(self.name, e)))
                return "message too large"
            except _ws.RECV_ERRORS as e:
                return self._dead_reason or _ws.drop_reason(e)
            self._last_rx = monotonic()
            self._ping_sent = None
            if opcode == text:
                try:
                    self._on_text(data, acks)
                except _Overflow:
                    return "dispatcher overflow"
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                code, reason = _ws.close_frame(data)
                stopped_by = _ws.paused_close(self.name, code, reason)
                if stopped_by is not None:
                    # Set before the socket is let go, so a publish racing the
                    # close raises this rather than "reconnecting".
                    self._stopped_by = stopped_by
                return f"server closed ({code})"
        return "closed"

    def _on_text(self, data: bytes, acks: AckQueue) -> None:
        try:
            frame = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            log.warning("channel %s: dropped a frame that is not JSON", self.name)
            return
        if not isinstance(frame, dict):
            return
        action = frame.get("action")
        if action == "published" and "data" not in frame:
            # A frame with data is a publication whose event is "published"
            # (any event name is allowed): it must never settle an ack.
            acks.settle(frame, None, wake=False)
            return
        if action is None and "error" in frame:
            err = error_from_frame(str(frame["error"]))
            if not acks.settle(None, err):
                self._inbox.put(("error", err))
            return
        inbox = self._inbox
        settings = self._settings
        if not inbox.offer(frame, len(data), settings.queue_size, settings.queue_bytes):
            log.warning(
                "channel %s: dispatcher is %d frames (%d bytes) behind; "
                "reconnecting to catch up",
                self.name,
                len(inbox),
                inbox.backlog_bytes,
            )
            raise _Overflow()

    def _reconnect(self) -> Any:
        settings = self._settings
        # A reconnect whose catch-up then failed did not end the outage: carry
        # its backoff on, so a server whose history is down sees the delay
        # grow as after failed connects, not one token and one socket per
        # first-step delay. The dispatcher marks the connection healthy again.
        carried = self._backoff
        if carried is None or self._healthy:
            policy = settings.reconnect_backoff.reset()
        else:
            policy = attrs.evolve(carried, history=carried.history[-16:])
        self._healthy = False
        retry_after: Optional[float] = None
        attempts = 0
        last_error: Optional[CohrtError] = None
        while not self._closing.is_set():
            if policy.total is not None and attempts >= policy.total:
                log.warning("channel %s: giving up after %d reconnect attempt(s)",
                            self.name, attempts)
                gave_up = ChannelClosedError(
                    f"channel {self.name!r} gave up reconnecting after {attempts} attempt(s)"
                )
                gave_up.__cause__ = last_error
                self._stopped_by = gave_up
                self._inbox.put(("gave_up", gave_up))
                return None
            policy = policy.increment(retry_after=retry_after)
            retry_after = None
            if self._closing.wait(policy.get_backoff()):
                return None
            # After an overflow, wait for the backlog to halve before reading more.
            while (
                len(self._inbox) > settings.queue_size // 2
                or self._inbox.backlog_bytes > settings.queue_bytes // 2
            ):
                if self._closing.wait(0.05):
                    return None
            attempts += 1
            try:
                try:
                    ws, presence, early = self.connect()
                except CohrtError:
                    raise
                except Exception as e:
                    # Not a refusal we know: a bug, or an answer nothing checked.
                    log.error("channel %s: reconnect attempt crashed", self.name, exc_info=e)
                    raise CohrtConnectionError(
                        f"reconnect to {self.name!r} failed: internal error "
                        f"({type(e).__name__})"
                    ) from e
            except CohrtError as e:
                if self._closing.is_set():
                    return None
                if isinstance(e, NotProvisionedError):
                    # Paused or deprovisioned: no later attempt can succeed until
                    # someone acts on the tenant, so stop instead of storming it.
                    log.warning("channel %s: reconnect refused, closing: %s", self.name, e)
                    self._stopped_by = e
                    self._inbox.put(("gave_up", e))
                    return None
                if isinstance(e, RateLimitedError):
                    retry_after = e.retry_after
                log.warning("channel %s: reconnect attempt %d failed: %s", self.name, attempts, e)
                self._inbox.put(("error", e))
                last_error = e
                continue
            with self._send_lock:
                if self._closing.is_set():
                    ws.shutdown()
                    return None
                self._ws = ws
                self._acks = AckQueue()
                if self._opened is not None:
                    self._opened.notify_all()
            self._backoff = policy
            self._reconnects += 1
            self._inbox.put(("reconnected", presence, attempts))
            for frame in early:
                self._inbox.put_frame(frame, 0)
            return ws
        return None
