"""cohrt_sync: a synchronous, thread-based client for the Cohesivity Realtime API.

The client half (``cohrt_sync.Client``) needs only ``requests``,
``websocket-client``, ``attrs`` and ``pluggy``. The local, wire-compatible
server lives in :mod:`cohrt_sync.server` and needs the ``server`` extra.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from ._signals import close_on_sigterm
from .channel import Channel
from .client import Client
from .dm import accept_dm_request, dm_channel, private_channel, send_dm_request, user_channel
from .errors import (
    AuthError,
    BadRequestError,
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    HistoryPageError,
    InvalidArgumentTypeError,
    NotFoundError,
    NotProvisionedError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TenantPausedError,
)
from .hookspecs import hookimpl, hookspec
from .models import Message, PublishAck, Token, User
from .realtimekit import (
    Meeting,
    MeetingNotReadyError,
    Page,
    Participant,
    PollSchedule,
    Preset,
    RealtimeKit,
    RealtimeKitError,
    RealtimeKitNotFoundError,
)
from .retry import Retry

__all__ = [
    "AuthError",
    "BadRequestError",
    "Channel",
    "ChannelClosedError",
    "Client",
    "CohrtConnectionError",
    "CohrtError",
    "CohrtTimeoutError",
    "HistoryPageError",
    "InvalidArgumentTypeError",
    "Meeting",
    "MeetingNotReadyError",
    "Message",
    "NotFoundError",
    "NotProvisionedError",
    "Page",
    "Participant",
    "PollSchedule",
    "Preset",
    "ProtocolError",
    "PublishAck",
    "RateLimitedError",
    "RealtimeKit",
    "RealtimeKitError",
    "RealtimeKitNotFoundError",
    "Retry",
    "ServerError",
    "TenantPausedError",
    "Token",
    "User",
    "__version__",
    "accept_dm_request",
    "close_on_sigterm",
    "dm_channel",
    "hookimpl",
    "hookspec",
    "private_channel",
    "send_dm_request",
    "user_channel",
]
