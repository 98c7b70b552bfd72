"""The frames a channel's presence changes send to its other sockets.

One place for their shape: a single node's hub sends them itself, and in
cluster mode the node where a user joined or left builds them once and
publishes them to every node (:mod:`cohrt_sync.server.cluster.presence`).
"""

from __future__ import annotations

from typing import Optional

from ._json import dumps
from ._time import iso_utc

__all__ = ["join_frame", "leave_frame"]


def join_frame(channel: str, user: str, name: Optional[str]) -> str:
    """The ``join`` frame the channel's other sockets get.

    :param channel: the channel joined.
    :param user: the user's id.
    :param name: the user's display name, if any.
    """
    return dumps(
        {"action": "join", "event": "join", "channel": channel, "user": {"id": user, "name": name}}
    )


def leave_frame(channel: str, user: str, name: Optional[str], now: float) -> str:
    """The ``leave`` frame, with ``last_seen``.

    :param channel: the channel left.
    :param user: the user's id.
    :param name: the user's display name, if any.
    :param now: when the user's last socket closed (``time.time()``).
    """
    return dumps(
        {
            "action": "leave",
            "event": "leave",
            "channel": channel,
            "user": {"id": user, "name": name},
            "last_seen": iso_utc(now),
        }
    )
