"""The WebSocket transport: websocket-client's sockets, and their failures in the client's terms.

A channel's sockets are made here, and what websocket-client raises or a
server's close frame says is turned into a :class:`~cohrt_sync.CohrtError`
(or, for a socket that was up, the reason of its drop) here and nowhere
else; :mod:`cohrt_sync._http` is the HTTP twin. A refused upgrade is an HTTP
answer, so it is classified by :func:`cohrt_sync._http.response_error` like
any other.
"""

from __future__ import annotations

import selectors
import socket
import struct
from typing import Any, Optional, Tuple

import websocket

from ._http import redact, response_error, scrub_exception
from ._latch import Flag
from .errors import (
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    ProtocolError,
    TenantPausedError,
    is_paused,
)
from .frames import MessageTooLarge, limit_message_size

__all__ = [
    "HANDSHAKE_READ_ERRORS",
    "RECV_ERRORS",
    "ChannelSocket",
    "MessageTooLarge",
    "close_frame",
    "connect",
    "cut",
    "drop_reason",
    "handshake_read_error",
    "new_socket",
    "paused_close",
    "release",
    "say_goodbye",
    "too_large",
]

#: What a read on a socket that was up raises when the connection is gone.
#: AttributeError: websocket-client after ``shutdown()`` has ``sock=None``.
RECV_ERRORS = (websocket.WebSocketException, OSError, AttributeError)

#: What reading the frames up to ``subscribed`` may raise besides a CohrtError:
#: the transport's failures, and a frame that is not JSON.
HANDSHAKE_READ_ERRORS = (websocket.WebSocketException, OSError, ValueError, RecursionError)


class ChannelSocket(websocket.WebSocket):
    """websocket-client's blocking socket, keeping a close frame whose reply fails.

    ``recv_data`` answers the peer's close frame before returning it, and
    raised when that answer could not be sent, so the frame's code and
    reason (a pause's 4003) were lost. A server that closes its TCP
    connection as soon as its close frame is out (aiohttp does, when another
    task is reading the socket) answers anything the client sent meanwhile
    with a reset, and the reply then fails. The peer has closed either way:
    the close frame is still what it said.
    """

    def send_close(self, status: int = websocket.STATUS_NORMAL, reason: Any = b"") -> None:
        """Reply to the peer's close frame; a reset or closed socket is not an error here."""
        try:
            super().send_close(status, reason)
        except (websocket.WebSocketConnectionClosedException, OSError):
            self.connected = False


def new_socket(max_message_size: int) -> Any:
    """A blocking ``websocket.WebSocket``, not yet connected, as a channel reads it.

    :param max_message_size: the largest message accepted, in bytes.
    """
    # Decoding each text frame to str validates UTF-8 already; the library's
    # own per-byte check would cost most of the receive time (see STYLE.md).
    ws: Any = ChannelSocket(skip_utf8_validation=True, enable_multithread=True)
    limit_message_size(ws, max_message_size)
    return ws


def connect(
    ws: Any, url: str, timeout: float, channel: str, context: str, closing: Flag
) -> None:
    """Connect ``ws`` to ``url`` (TCP and upgrade); every failure a CohrtError.

    The socket is shut down on failure.

    :param ws: from :func:`new_socket`.
    :param url: the socket URL (it holds the token: never shown).
    :param timeout: seconds for each step.
    :param channel: the channel name, for messages.
    :param context: what is being done, for messages.
    :param closing: set by the channel's ``close()``.
    :raises CohrtError: the refusal (classified as its HTTP answer), a
        timeout, a failed connection, or ChannelClosedError once ``closing`` is set.
    """
    try:
        ws.connect(url, timeout=timeout, suppress_origin=True)
    except websocket.WebSocketBadStatusException as e:
        ws.shutdown()
        raise response_error(
            e.status_code, e.resp_body or b"", e.resp_headers or {}, context
        ) from scrub_exception(e)
    except (websocket.WebSocketTimeoutException, TimeoutError) as e:
        ws.shutdown()
        raise CohrtTimeoutError(f"{context} timed out") from scrub_exception(e)
    except (websocket.WebSocketException, OSError) as e:
        ws.shutdown()
        if closing.is_set():
            raise ChannelClosedError(f"channel {channel!r} closed") from scrub_exception(e)
        scrub_exception(e)
        raise CohrtConnectionError(f"{context} failed: {redact(str(e))}") from e


def handshake_read_error(exc: BaseException, context: str, timeout: float) -> CohrtError:
    """The CohrtError for what reading up to ``subscribed`` raised (not raised here).

    :param exc: one of :data:`HANDSHAKE_READ_ERRORS`.
    :param context: what is being done, for the message.
    :param timeout: the handshake's time limit, for the message.
    """
    if isinstance(exc, websocket.WebSocketTimeoutException):
        return CohrtTimeoutError(f"{context}: no 'subscribed' within {timeout}s")
    return CohrtConnectionError(f"{context} failed: {type(exc).__name__}: {exc}"[:300])


def say_goodbye(ws: Any) -> bool:
    """Send a close frame on ``ws`` if it can go out now; never blocks.

    ``ws.send_close()`` would wait for the send lock and for room in the
    socket's buffer, and a peer that stopped reading (a frozen host) leaves
    neither. So the frame goes only when no other frame is being sent (a
    ping or a pong stuck on that peer holds the lock) and the socket is
    writable, which means an 8-byte frame fits at once. Unlike
    ``send_close()``, it leaves ``ws.connected`` as it is. The socket is not
    shut down here: the peer's reply is read by the socket's reader.

    :param ws: a connected ``websocket.WebSocket``.
    :returns: True if the frame was sent.
    """
    lock = ws.lock
    if not lock.acquire(blocking=False):
        return False
    try:
        sock = ws.sock
        if sock is None or not _writable(sock):
            return False
        frame = websocket.ABNF.create_frame(
            struct.pack("!H", websocket.STATUS_NORMAL), websocket.ABNF.OPCODE_CLOSE
        )
        if ws.get_mask_key:
            frame.get_mask_key = ws.get_mask_key
        data = frame.format()
        return bool(ws._send(data) == len(data))
    except (websocket.WebSocketException, OSError, ValueError):
        # ValueError: a socket closed meanwhile (its fd is -1).
        return False
    finally:
        lock.release()


def _writable(sock: socket.socket) -> bool:
    """True if ``sock`` has room to send now (a selector: no ``FD_SETSIZE`` limit)."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        return bool(selector.select(0))


def cut(ws: Any) -> None:
    """Shut the socket under ``ws`` down now, whatever stage it is in.

    ``shutdown(SHUT_RDWR)`` wakes a thread blocked in ``recv`` (it reads the
    end of the stream) or in ``send`` (it fails) on that socket, for certain.
    Neither ``abort()`` nor ``shutdown()`` of websocket-client does: ``abort()``
    is a no-op unless ``ws.connected``, which the handshake sets only once it
    completes and ``send_close()`` clears, and ``shutdown()`` closes the file
    descriptor, which on Linux leaves a ``recv`` already waiting on it asleep.

    :param ws: a ``websocket.WebSocket``.
    """
    sock = ws.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def release(ws: Any) -> None:
    """Close this process's descriptor of the socket under ``ws``; the connection lives on.

    For a forked child's copy of its parent's socket: ``shutdown()`` or a
    close frame would end the connection for the parent too, while
    ``close()`` only drops this process's reference (no TLS close_notify is
    sent either). ``ws`` is unusable afterwards.

    :param ws: a ``websocket.WebSocket``.
    """
    sock, ws.sock = ws.sock, None
    ws.connected = False
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def drop_reason(exc: BaseException) -> str:
    """Why a socket that was up dropped, for ``on_disconnected``.

    :param exc: one of :data:`RECV_ERRORS`.
    """
    return f"connection lost: {type(exc).__name__}"


def too_large(channel: str, exc: MessageTooLarge) -> ProtocolError:
    """The error reported when a frame header announced a message over the limit.

    :param channel: the channel name.
    :param exc: what the frame reader raised.
    """
    return ProtocolError(f"channel {channel!r}: {exc}")


def close_frame(data: Any) -> Tuple[Optional[int], str]:
    """The status code and reason of a close frame's payload.

    :param data: what ``recv_data`` returned for the close frame.
    """
    payload = data if isinstance(data, bytes) else getattr(data, "data", b"")
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    return code, payload[2:].decode("utf-8", "replace")


def paused_close(channel: str, code: Optional[int], reason: str) -> Optional[CohrtError]:
    """The error that ends a channel the server closed because its tenant is paused, or None.

    :param channel: the channel name.
    :param code: the close frame's status code.
    :param reason: its reason text.
    """
    if is_paused(None, reason):
        return TenantPausedError(f"channel {channel!r} closed by the server ({code}): {reason}")
    return None
