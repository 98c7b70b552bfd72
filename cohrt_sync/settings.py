"""What a channel is told by its maker: :class:`ChannelSettings`, one frozen value.

A :class:`~cohrt_sync.Client` builds one from its arguments (documented
there) when it is made, and hands it to every channel it opens and to each
part of those, so no part reads a setting from the object that made it.
"""

from __future__ import annotations

from typing import Optional

import attrs

from .retry import Retry

__all__ = ["MAX_DISPATCH_IDLE", "ChannelSettings"]

#: The longest ``dispatch_idle`` accepted, in seconds (a day); ``None`` means never.
MAX_DISPATCH_IDLE = 86_400.0


@attrs.frozen
class ChannelSettings:
    """The settings of a client's channels, fixed when the client is made.

    :param connect_timeout: seconds for a whole socket handshake.
    :param ack_timeout: default seconds a publish waits for its ack.
    :param ping_interval: seconds of silence before a socket is pinged.
    :param ping_timeout: seconds without a pong before a socket counts as dead.
    :param queue_size: frames the dispatcher may fall behind before the overflow policy.
    :param queue_bytes: bytes of frames the dispatcher may fall behind likewise.
    :param max_message_size: largest socket message accepted, in bytes.
    :param dispatch_linger: seconds a busy dispatcher waits to batch frames.
    :param dispatch_idle: seconds a dispatcher thread with nothing to do waits
        before it ends (the next frame starts another); ``None``: never.
    :param reconnect_backoff: the reconnect policy.
    """

    connect_timeout: float
    ack_timeout: float
    ping_interval: float
    ping_timeout: float
    queue_size: int
    queue_bytes: int
    max_message_size: int
    dispatch_linger: float
    dispatch_idle: Optional[float]
    reconnect_backoff: Retry
