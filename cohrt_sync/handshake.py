"""Opening one channel socket: mint a token, connect, read up to ``subscribed``.

:func:`open_socket` is the whole handshake of a channel connection, first or
reconnect. Every failure comes out as a :class:`~cohrt_sync.CohrtError`
(refusals classified like HTTP errors, credentials scrubbed from causes).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional

import websocket

from ._http import redact, response_error, scrub_exception
from .errors import (
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    error_from_frame,
)
from .frames import MessageTooLarge, limit_message_size
from .models import User
from .presence import presence_list

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Handshake", "MessageTooLarge", "limit_message_size", "open_socket", "ws_url"]


class Handshake(NamedTuple):
    """A subscribed socket.

    :param ws: the blocking ``websocket.WebSocket``.
    :param presence: the users of the ``subscribed`` frame.
    :param early: frames that arrived before ``subscribed``, to dispatch first.
    """

    ws: Any
    presence: List[User]
    early: List[Dict[str, Any]]


def ws_url(base_url: str, token: str, channel: str) -> str:
    """The socket URL of ``channel`` for a connection token.

    :param base_url: the API root (``http`` becomes ``ws``, ``https`` ``wss``).
    :param token: the connection token.
    :param channel: the channel name.
    """
    parts = urllib.parse.urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urllib.parse.urlencode({"token": token, "channel": channel})
    return urllib.parse.urlunsplit((scheme, parts.netloc, "/edge/realtime", query, ""))


def open_socket(
    client: Client,
    channel: str,
    user_id: str,
    user_name: Optional[str],
    ttl: int,
    closing: threading.Event,
    track: Callable[[Any], None],
) -> Handshake:
    """Mint a fresh token, open the socket, read up to ``subscribed``.

    :param client: the client (token minting, URL, ``connect_timeout``).
    :param channel: the channel name.
    :param user_id: the user the token is minted for.
    :param user_name: the display name in presence.
    :param ttl: the token lifetime.
    :param closing: set by ``close()``; the handshake gives up once it is.
    :param track: called with the socket before connecting, and with None
        once subscribed, so ``close()`` can cut a handshake in progress.
    :raises ChannelClosedError: ``closing`` was set meanwhile.
    """
    token = client.mint_token(user_id, name=user_name, ttl=ttl)
    url = ws_url(client.base_url, token.token, channel)
    # Decoding each text frame to str validates UTF-8 already; the library's
    # own per-byte check would cost most of the receive time (see STYLE.md).
    ws: Any = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    limit_message_size(ws, client.max_message_size)
    track(ws)
    if closing.is_set():
        raise ChannelClosedError(f"channel {channel!r} closed")
    timeout = client.connect_timeout
    context = f"subscribe to {channel!r}"
    # A per-read timeout does not bound a reply trickled a byte at a time:
    # the watchdog cuts the socket once connect_timeout has passed, whatever
    # stage the handshake is in.
    deadline = time.monotonic() + timeout
    fired = threading.Event()
    watchdog = threading.Timer(timeout, _cut, (ws, fired))
    watchdog.name = f"cohrt-sync-handshake-{channel}"
    watchdog.daemon = True
    watchdog.start()
    try:
        return _handshake(ws, url, deadline, timeout, context, channel, closing, track)
    except CohrtError as e:
        if fired.is_set() and not closing.is_set() and not isinstance(e, CohrtTimeoutError):
            raise CohrtTimeoutError(
                f"{context}: no 'subscribed' within {timeout}s"
            ) from scrub_exception(e)
        raise
    finally:
        watchdog.cancel()
        watchdog.join(1.0)


def _cut(ws: Any, fired: threading.Event) -> None:
    fired.set()
    sock = ws.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _handshake(
    ws: Any,
    url: str,
    deadline: float,
    timeout: float,
    context: str,
    channel: str,
    closing: threading.Event,
    track: Callable[[Any], None],
) -> Handshake:
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
    if closing.is_set():
        # close() came while connect() had no socket yet to shut down.
        ws.shutdown()
        raise ChannelClosedError(f"channel {channel!r} closed")
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
                raise error_from_frame(str(frame["error"]))
            action = frame.get("action")
            if "data" in frame:
                # A publication, whatever its event is called.
                early.append(frame)
            elif action == "subscribed":
                users = presence_list(frame.get("presence"), channel)
                break
            elif action != "connected":
                early.append(frame)
    except CohrtError:
        ws.shutdown()
        raise
    except websocket.WebSocketTimeoutException as e:
        ws.shutdown()
        raise CohrtTimeoutError(f"{context}: no 'subscribed' within {timeout}s") from e
    except (websocket.WebSocketException, OSError, ValueError, RecursionError) as e:
        ws.shutdown()
        raise CohrtConnectionError(f"{context} failed: {type(e).__name__}: {e}"[:300]) from e
    # A blocking socket: a read timeout would add a poll() and a GIL round
    # trip to every recv. Pings and dead-peer detection run on the client's
    # keepalive thread instead (see Channel.keepalive_tick).
    ws.settimeout(None)
    track(None)
    return Handshake(ws, users, early)
