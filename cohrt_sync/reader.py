"""A channel's reader thread: read frames, settle acks, hand the rest over, reconnect.

:class:`SocketReader` is the part of :class:`~cohrt_sync.Channel` that owns
the socket. It never runs user code, so a slow hook cannot delay pong replies
(websocket-client answers pings inside ``recv``) or acks. Pings and
dead-peer detection are driven by the client's keepalive thread through
:meth:`SocketReader.keepalive_tick`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import attrs
import websocket

from .acks import AckQueue
from .errors import (
    CohrtConnectionError,
    CohrtError,
    NotProvisionedError,
    ProtocolError,
    RateLimitedError,
    TenantPausedError,
    error_from_frame,
    is_paused,
)
from .frames import MessageTooLarge
from .handshake import Handshake
from .inbox import Inbox
from .retry import Retry

if TYPE_CHECKING:
    from .client import Client

__all__ = ["SocketReader"]

log = logging.getLogger("cohrt_sync.channel")


class _Overflow(Exception):
    """Raised inside the reader when the dispatcher queue is full."""


class SocketReader:
    """The reader-thread half of a channel (mixed into :class:`~cohrt_sync.Channel`)."""

    # Fields of Channel (an attrs class with slots) that the reader uses.
    client: Client
    name: str
    _ws: Any
    _send_lock: threading.Lock
    _acks: AckQueue
    _inbox: Inbox
    _closing: threading.Event
    _reconnects: int
    _last_rx: float
    _ping_sent: Optional[float]
    _dead_reason: Optional[str]
    _stopped_by: Optional[CohrtError]
    _backoff: Optional[Retry]
    _healthy: bool

    def _connect(self) -> Handshake:
        raise NotImplementedError

    def _reader_main(self) -> None:
        ws = self._ws
        while ws is not None and not self._closing.is_set():
            try:
                reason = self._read_until_drop(ws)
            except Exception as e:
                # A bug, or a frame no decoder survives (200 KB of nested "["):
                # a reported drop, then the usual reconnect and catch-up.
                reason = self._report_crash("reading a frame", e)
            try:
                go_on = self._after_drop(ws, reason)
            except Exception as e:
                self._report_crash("dropping the socket", e)
                go_on = not self._closing.is_set()
            ws = self._reconnect_guarded() if go_on else None

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

    def _after_drop(self, ws: Any, reason: str) -> bool:
        """Let the dropped socket go and report the drop; False: do not reconnect."""
        with self._send_lock:
            if self._ws is ws:
                self._ws = None
        stopped_by = self._stopped_by
        self._acks.fail_all(
            stopped_by
            or CohrtConnectionError(
                f"connection to {self.name!r} lost before the ack; "
                "the publish may or may not have been applied"
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

    def _read_until_drop(self, ws: Any) -> str:
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
            except MessageTooLarge as e:
                log.warning("channel %s: %s; reconnecting", self.name, e)
                self._inbox.put(("error", ProtocolError(f"channel {self.name!r}: {e}")))
                return "message too large"
            except (websocket.WebSocketException, OSError, AttributeError) as e:
                # AttributeError: websocket-client after shutdown() has sock=None.
                return self._dead_reason or f"connection lost: {type(e).__name__}"
            self._last_rx = monotonic()
            self._ping_sent = None
            if opcode == text:
                try:
                    self._on_text(data)
                except _Overflow:
                    return "dispatcher overflow"
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                code = None
                payload = data if isinstance(data, bytes) else getattr(data, "data", b"")
                if len(payload) >= 2:
                    code = int.from_bytes(payload[:2], "big")
                reason = payload[2:].decode("utf-8", "replace")
                if is_paused(None, reason):
                    # Set before the socket is let go, so a publish racing the
                    # close raises this rather than "reconnecting".
                    self._stopped_by = TenantPausedError(
                        f"channel {self.name!r} closed by the server ({code}): {reason}"
                    )
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
                # Also the read stall limit: a frame trickled in (or stuck) for
                # this long keeps the pong unread, so the socket is cut.
                log.info("channel %s: no pong within %ss", self.name, client.ping_timeout)
                self._dead_reason = "ping timeout"
                self._force_reconnect()
        elif now - self._last_rx >= client.ping_interval:
            self._ping_sent = now
            try:
                ws.ping()
            except Exception as e:
                log.info("channel %s: ping failed (%s)", self.name, type(e).__name__)
                self._dead_reason = "ping failed"
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
        if action == "published" and "data" not in frame:
            # A frame with data is a publication whose event is "published"
            # (any event name is allowed): it must never settle an ack.
            self._acks.settle(frame, None)
            return
        if action is None and "error" in frame:
            err = error_from_frame(str(frame["error"]))
            if not self._acks.settle(None, err):
                self._inbox.put(("error", err))
            return
        inbox = self._inbox
        client = self.client
        if not inbox.offer(frame, len(data), client.queue_size, client.queue_bytes):
            log.warning(
                "channel %s: dispatcher is %d frames (%d bytes) behind; "
                "reconnecting to catch up",
                self.name,
                len(inbox),
                inbox.backlog_bytes,
            )
            raise _Overflow()

    def _reconnect(self) -> Any:
        client = self.client
        # A reconnect whose catch-up then failed did not end the outage: carry
        # its backoff on, so a server whose history is down sees the delay
        # grow as after failed connects, not one token and one socket per
        # first-step delay. The dispatcher marks the channel healthy again.
        carried = self._backoff
        if carried is None or self._healthy:
            policy = client.reconnect_backoff.reset()
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
                gave_up = CohrtConnectionError(
                    f"channel {self.name!r} gave up reconnecting after {attempts} attempt(s)"
                )
                gave_up.__cause__ = last_error
                self._inbox.put(("gave_up", gave_up))
                return None
            policy = policy.increment(retry_after=retry_after)
            retry_after = None
            if self._closing.wait(policy.get_backoff()):
                return None
            # After an overflow, wait for the backlog to halve before reading more.
            while (
                len(self._inbox) > client.queue_size // 2
                or self._inbox.backlog_bytes > client.queue_bytes // 2
            ):
                if self._closing.wait(0.05):
                    return None
            attempts += 1
            try:
                try:
                    ws, presence, early = self._connect()
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
            self._backoff = policy
            self._reconnects += 1
            self._inbox.put(("reconnected", presence, attempts))
            for frame in early:
                self._inbox.put_frame(frame, 0)
            return ws
        return None

    def _force_reconnect(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                # shutdown(SHUT_RDWR) wakes the reader's blocking recv with an error.
                ws.abort()
            except Exception:
                pass
