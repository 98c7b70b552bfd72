"""Connection guard: deadlines for slow requests and a cap on open connections.

aiohttp on its own waits for the first request head of a connection without
a limit (3.14 applies its keep-alive timeout, an hour by default), never times
out a request body or a response the client does not read, and accepts
connections until ``accept()`` fails for want of file descriptors. So one client that opens
connections and sends nothing, or half a request, can make every other
tenant's requests fail. This module adds what is missing, at the points
aiohttp offers for it:

* :class:`GuardedRunner` is an :class:`aiohttp.web.AppRunner` whose server,
  a :class:`GuardedServer`, makes :class:`GuardedRequestHandler` protocols.
* **Request head** (``header_timeout``): a new connection must deliver a
  complete request head within this long of opening, however it trickles the
  bytes. A head that started arriving is answered with a 408; a connection
  that sent nothing is just closed.
* **Keep-alive** (``keepalive_timeout``): aiohttp's own timer. After a
  response, the next complete request head must arrive within this long; bytes
  trickling in do not extend it.
* **Request body** (``body_timeout``): :func:`read_body` reads the whole body
  within this long (total, not per read), or answers 408 and closes.
* **Response** (``send_timeout``): a client that does not read its response
  would otherwise hold the connection (and the response's memory) forever;
  past this the connection is aborted.
* **Upgraded WebSockets** are never cut by these deadlines (aiohttp's
  heartbeat finds dead peers).
* **Connection cap** (``max_connections``, resolved in :mod:`.connlimits`
  below the open-file limit): a connection over the cap gets a canned 503
  envelope with ``Retry-After`` and ``Connection: close``, so the server
  never runs out of descriptors itself.
* **Request heads** (``max_head_bytes``, and the bytes of unfinished heads
  across connections): counted by a :class:`.headguard.HeadMeter` on every
  read before aiohttp parses it; past either bound the connection gets a
  canned 431 or 503 and is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Optional

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ._json import dumps
from .connlimits import ConnLimits
from .errors import ApiError, error_response
from .headguard import HEAD_TOO_LARGE, HeadBudget, HeadMeter, Parsed

log = logging.getLogger("cohrt_sync.server")

#: How long a refused connection may stay open to read its 503.
REFUSAL_LINGER_S = 1.0
#: How long a connection cut for a slow request head may take to flush its
#: 408 before it is aborted.
CUT_GRACE_S = 1.0
#: How long the unread rest of a request body may take to arrive before its
#: connection is closed after the response (see ``_drain_body``).
DRAIN_S = 1.0
#: Seconds between two "connection cap reached" warnings.
WARN_EVERY_S = 10.0


def _canned(code: int, reason: str, message: str, status: str, extra: str = "") -> bytes:
    body = dumps({"error": {"code": code, "message": message, "status": status}}).encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedRequestHandler(RequestHandler):
    """aiohttp's HTTP protocol with a deadline on the first request head."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._head_timer: Optional[asyncio.TimerHandle] = None
        self._head_started = False
        self._close_after_response = False
        self._meter = HeadMeter(manager.heads)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the clock for the first request head."""
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._guard.header_timeout, self._head_due)

    def data_received(self, data: bytes) -> None:
        """Count head bytes (see :mod:`.headguard`), then parse as usual.

        A head started arriving is also noted, for the 408.
        """
        if data and self._head_timer is not None:
            self._head_started = True
        if not data or not self._speaks_http():
            super().data_received(data)
            return
        refusal = self._meter.feed(data, self._parse)
        if refusal is not None:
            self._refuse_head(refusal)
        elif self._meter.body_unknown:
            self.close_after_response()

    def _speaks_http(self) -> bool:
        # aiohttp 3.14 calls it _upgraded, earlier versions _upgrade.
        upgraded = getattr(self, "_upgraded", getattr(self, "_upgrade", False))
        closing = self._force_close or self._close
        return not (upgraded or closing or self._payload_parser is not None)

    def _parse(self, piece: bytes) -> Parsed:
        before = self._request_count
        super().data_received(piece)
        done = self._request_count != before and bool(self._messages)
        return Parsed(self._messages[-1][0] if done else None, self._speaks_http())

    def _refuse_head(self, refusal: str) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if refusal == HEAD_TOO_LARGE:
            transport.write(self._guard.head_too_large_response)
        else:
            self._guard.warn_heads_busy()
            transport.write(self._guard.heads_busy_response)
        self.force_close()
        # Its bytes stay charged until the connection is gone (connection_lost).
        asyncio.get_running_loop().call_later(CUT_GRACE_S, transport.abort)

    def head_received(self) -> None:
        """A complete request head arrived: its deadline is met.

        Later heads on this connection are aiohttp's keep-alive timer's job.
        """
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_due(self) -> None:
        # A head completed in this very loop iteration has woken the request
        # task but not yet reached head_received(); that task step is already
        # queued, so checking one step later sees it.
        asyncio.get_running_loop().call_soon(self._head_check)

    def _head_check(self) -> None:
        if self._head_timer is None or self.transport is None:
            return
        self._head_timer = None
        transport = self.transport
        if self._head_started:
            transport.write(self._guard.head_timeout_response)
        log.debug("cut a connection: no complete request head in %gs", self._guard.header_timeout)
        self.force_close()
        # close() waits for the 408 to be flushed; a peer that reads nothing
        # must not keep the descriptor.
        asyncio.get_running_loop().call_later(CUT_GRACE_S, transport.abort)

    def close_after_response(self) -> None:
        """Close right after the response instead of lingering over the unread body."""
        self._close_after_response = True

    async def finish_response(self, request: web.BaseRequest, *args: Any, **kwargs: Any) -> Any:
        """Send the response within ``send_timeout`` or abort; close if asked to.

        An abort makes aiohttp's pending write fail with a connection error,
        which it handles as a client that went away.
        """
        transport = self.transport
        timer = None
        if transport is not None:
            timer = asyncio.get_running_loop().call_later(
                self._guard.send_timeout, self._send_overdue, transport
            )
        try:
            result = await super().finish_response(request, *args, **kwargs)
        finally:
            if timer is not None:
                timer.cancel()
        if self._close_after_response:
            await _drain_body(request)
            self.force_close()
        return result

    def _send_overdue(self, transport: asyncio.Transport) -> None:
        log.debug("cut a connection: response not taken in %gs", self._guard.send_timeout)
        transport.abort()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: Optional[BaseException] = None,
        message: Optional[str] = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not parse with the JSON error envelope.

        aiohttp's own answer is text/plain and quotes the raw request bytes
        back, which may hold a key; this one names only the kind of error.
        """
        super().handle_error(request, status, exc, message)  # logs it (filtered)
        if status >= 500:
            text = "internal server error"
        else:
            kind = type(exc).__name__ if exc is not None else "BadRequest"
            text = f"malformed HTTP request ({kind}): fix the request line or headers"
        response = error_response(status, text)
        response.force_close()
        return response

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Stop the head clock, free this connection's slot and its head bytes."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._meter.release()
        self._guard.forget(self)
        super().connection_lost(exc)


async def _drain_body(request: web.BaseRequest) -> None:
    """Read and drop what is left of ``request``'s body, for at most :data:`DRAIN_S`.

    A socket closed while its peer is still sending makes the kernel answer
    the next bytes with a reset, which throws away the part of the response
    not yet sent; so the body (a chunked one the handler never read) is
    drained first. An endless body gets :data:`DRAIN_S`, then the close.
    """
    try:
        await asyncio.wait_for(request.release(), DRAIN_S)
    except Exception:
        # The deadline, a malformed chunk, a peer gone: the response is out
        # whatever ended the body, and the connection closes next.
        pass


class _Refusal(asyncio.Protocol):
    """A connection over the cap: a canned 503, then closed."""

    def __init__(self, server: GuardedServer) -> None:
        self._server = server
        self._timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        server = self._server
        server.refusing += 1
        transport.write(server.refusal_response)
        if server.refusing > server.limits.refusal_slots or not transport.can_write_eof():
            transport.close()
            return
        # Half-close, and keep reading (and dropping) what the client sends
        # until it closes too: closing with unread bytes would send a reset
        # that can destroy the 503 before the client reads it.
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> Optional[bool]:
        return False  # close the transport

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._server.refusing -= 1
        if self._timer is not None:
            self._timer.cancel()


class GuardedServer(web.Server):
    """aiohttp's low-level server making :class:`GuardedRequestHandler` protocols.

    :param limits: the connection cap and refusal slots.
    :param header_timeout: seconds for the first request head of a connection.
    :param send_timeout: seconds for the client to take a whole response.
    :param max_head_bytes: most bytes of one request head.
    :param handler, request_factory, handler_cancellation, loop, kwargs: as
        for :class:`aiohttp.web.Server`.
    """

    def __init__(
        self,
        handler: Any,
        *,
        limits: ConnLimits,
        header_timeout: float,
        send_timeout: float,
        max_head_bytes: int,
        request_factory: Any,
        handler_cancellation: bool = False,
        loop: asyncio.AbstractEventLoop,
        **kwargs: Any,
    ) -> None:
        def factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.head_received()
            return request_factory(message, payload, protocol, writer, task)

        super().__init__(
            handler,
            request_factory=factory,
            handler_cancellation=handler_cancellation,
            loop=loop,
            **kwargs,
        )
        self.limits = limits
        self.header_timeout = header_timeout
        self.send_timeout = send_timeout
        self._handler_loop = loop
        self._handler_kwargs = kwargs
        # Weak, so a protocol whose transport never came up can't hold a slot.
        self._live: weakref.WeakSet[GuardedRequestHandler] = weakref.WeakSet()
        self.refusing = 0
        self._warned_at = 0.0
        self._heads_warned_at = 0.0
        #: Bytes of unfinished request heads, all connections together.
        self.heads = HeadBudget(max_head_bytes)
        self.refusal_response = _canned(
            503,
            "Service Unavailable",
            f"server busy: {limits.max_connections} connections open (max_connections);"
            " retry shortly",
            "UNAVAILABLE",
            "Retry-After: 1\r\n",
        )
        self.head_timeout_response = _canned(
            408,
            "Request Timeout",
            f"request head not complete within {header_timeout:g}s (header_timeout);"
            " connection closed",
            "DEADLINE_EXCEEDED",
        )
        self.head_too_large_response = _canned(
            431,
            "Request Header Fields Too Large",
            f"request head over {max_head_bytes} bytes (max_head_bytes):"
            " send fewer or shorter headers",
            "INVALID_ARGUMENT",
        )
        self.heads_busy_response = _canned(
            503,
            "Service Unavailable",
            "server busy: too many unfinished request heads; retry shortly",
            "UNAVAILABLE",
            "Retry-After: 1\r\n",
        )

    def __call__(self) -> Any:
        """The protocol for a new connection: a request handler, or a refusal past the cap."""
        if len(self._live) >= self.limits.max_connections:
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "connection cap reached: %d connections open (max_connections);"
                    " answering new ones 503",
                    len(self._live),
                )
            return _Refusal(self)
        handler = GuardedRequestHandler(self, loop=self._handler_loop, **self._handler_kwargs)
        self._live.add(handler)
        return handler

    def warn_heads_busy(self) -> None:
        """Log (at most every :data:`WARN_EVERY_S`) that unfinished heads filled their budget."""
        now = time.monotonic()
        if now - self._heads_warned_at >= WARN_EVERY_S:
            self._heads_warned_at = now
            log.warning(
                "unfinished request heads hold %d bytes; answering more of them 503",
                self.heads.in_flight,
            )

    def forget(self, handler: GuardedRequestHandler) -> None:
        """``handler``'s connection is gone: its slot is free."""
        self._live.discard(handler)


class GuardedRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` serving through a :class:`GuardedServer`.

    :param app: the application.
    :param limits: from :func:`.connlimits.resolve_limits`.
    :param header_timeout: seconds for the first request head of a connection.
    :param send_timeout: seconds for the client to take a whole response.
    :param max_head_bytes: most bytes of one request head.
    :param kwargs: as for :class:`aiohttp.web.AppRunner` (``keepalive_timeout``
        among them).
    """

    def __init__(
        self,
        app: web.Application,
        *,
        limits: ConnLimits,
        header_timeout: float,
        send_timeout: float,
        max_head_bytes: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits
        self.header_timeout = header_timeout
        self.send_timeout = send_timeout
        self.max_head_bytes = max_head_bytes

    async def _make_server(self) -> web.Server:
        # The app's own server (after its startup signal), rebuilt as ours
        # with the same handler, request factory and protocol settings.
        base = await super()._make_server()
        return GuardedServer(
            base.request_handler,
            limits=self.limits,
            header_timeout=self.header_timeout,
            send_timeout=self.send_timeout,
            max_head_bytes=self.max_head_bytes,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **base._kwargs,
        )


class BodyTimeout(ApiError):
    """408 for a request body that did not arrive in time; the answer closes the connection."""

    def __init__(self, timeout: float) -> None:
        super().__init__(
            408,
            f"request body not complete within {timeout:g}s (body_timeout); connection closed",
        )

    def response(self) -> web.Response:
        """The envelope, with ``Connection: close``."""
        resp = super().response()
        resp.force_close()
        return resp


async def read_body(request: web.BaseRequest, timeout: float) -> bytes:
    """The whole request body, read within ``timeout`` seconds in total.

    :raises BodyTimeout: when the body is not all there in time; the
        connection is closed after the answer, without lingering over the rest.
    """
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        protocol = request.protocol
        if isinstance(protocol, GuardedRequestHandler):
            protocol.close_after_response()
        raise BodyTimeout(timeout) from None
