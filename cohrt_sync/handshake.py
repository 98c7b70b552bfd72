"""Opening one channel socket: mint a token, connect, read up to ``subscribed``.

:func:`open_socket` is the whole handshake of a channel connection, first or
reconnect. Every failure comes out as a :class:`~cohrt_sync.CohrtError`:
a token the port could not mint as its own error, the socket's failures as
:mod:`cohrt_sync._ws` translates them, an ``{"error": ...}`` frame as
:func:`~cohrt_sync.errors.error_from_frame` reads it.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from . import _ws
from ._http import scrub_exception
from ._latch import Flag
from .errors import (
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    error_from_frame,
)
from .models import User
from .port import HttpPort
from .presence import presence_list
from .settings import ChannelSettings

__all__ = ["Handshake", "open_socket"]


class Handshake(NamedTuple):
    """A subscribed socket.

    :param ws: the blocking ``websocket.WebSocket``.
    :param presence: the users of the ``subscribed`` frame.
    :param early: frames that arrived before ``subscribed``, to dispatch first.
    """

    ws: Any
    presence: List[User]
    early: List[Dict[str, Any]]


def open_socket(
    port: HttpPort,
    settings: ChannelSettings,
    channel: str,
    user_id: str,
    user_name: Optional[str],
    ttl: int,
    closing: Flag,
    track: Callable[[Any], None],
) -> Handshake:
    """Mint a fresh token, open the socket, read up to ``subscribed``.

    :param port: mints the token.
    :param settings: ``connect_timeout`` and ``max_message_size``.
    :param channel: the channel name.
    :param user_id: the user the token is minted for.
    :param user_name: the display name in presence.
    :param ttl: the token lifetime.
    :param closing: set by ``close()``; the handshake gives up once it is.
    :param track: called with the socket before connecting, and with None
        once subscribed, so ``close()`` can cut a handshake in progress.
    :raises ChannelClosedError: ``closing`` was set meanwhile.
    """
    token = port.mint_token(user_id, name=user_name, ttl=ttl)
    url = token.ws_url(channel)
    ws = _ws.new_socket(settings.max_message_size)
    track(ws)
    if closing.is_set():
        raise ChannelClosedError(f"channel {channel!r} closed")
    timeout = settings.connect_timeout
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
    _ws.cut(ws)


def _handshake(
    ws: Any,
    url: str,
    deadline: float,
    timeout: float,
    context: str,
    channel: str,
    closing: Flag,
    track: Callable[[Any], None],
) -> Handshake:
    _ws.connect(ws, url, timeout, channel, context, closing)
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
    except _ws.HANDSHAKE_READ_ERRORS as e:
        ws.shutdown()
        raise _ws.handshake_read_error(e, context, timeout) from e
    # A blocking socket: a read timeout would add a poll() and a GIL round
    # trip to every recv. Pings and dead-peer detection run on the client's
    # keepalive thread instead (see Connection.keepalive_tick).
    ws.settimeout(None)
    # The upgrade's answer (status, headers) is never read again: about 1 KiB
    # an idle channel would otherwise keep for its socket's life.
    ws.handshake_response = None
    track(None)
    return Handshake(ws, users, early)
