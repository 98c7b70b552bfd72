"""``client.realtimekit``: typed access to the RealtimeKit (video/voice) proxy.

The edge API proxies ``/edge/realtimekit/*`` to Cloudflare RealtimeKit's REST
API for the tenant; responses keep Cloudflare's envelope
``{"success": true, "data": ...}``. :class:`RealtimeKit` unwraps it into
frozen values (:class:`Meeting`, :class:`Participant`, :class:`Preset`,
:class:`Page`) and turns the envelope's ``errors`` into the
:class:`~cohrt_sync.CohrtError` tree, keeping the upstream ``code`` and
``message`` (:class:`RealtimeKitNotFoundError` for ``ResourceNotFound``).

Meeting creation is eventually consistent (the spec: "poll after create"), so
:meth:`RealtimeKit.create_meeting` polls the new meeting until it resolves,
and :meth:`RealtimeKit.add_participant` retries a ``ResourceNotFound`` on the
same schedule. Every request goes through the client's shared HTTP layer
(edge bearer, retries, key redaction); non-idempotent calls are retried only
where the request provably did not arrive.

::

    rtk = client.realtimekit
    meeting = rtk.create_meeting("Standup")            # returns once readable
    host = rtk.add_participant(meeting.id, preset_name="group_call_host", name="Ada")
    host.token                                         # give this to the frontend SDK
"""

from __future__ import annotations

from .api import MAX_PER_PAGE, PREFIX, RealtimeKit
from .errors import (
    MeetingNotReadyError,
    RealtimeKitBadRequestError,
    RealtimeKitError,
    RealtimeKitNotFoundError,
    RealtimeKitServerError,
    UpstreamError,
    _to_realtimekit_error,
    _upstream_errors,
)
from .values import (
    DEFAULT_POLL,
    UNSET,
    Meeting,
    Page,
    Paging,
    Participant,
    PollSchedule,
    Preset,
)

__all__ = [
    "DEFAULT_POLL",
    "MAX_PER_PAGE",
    "PREFIX",
    "UNSET",
    "Meeting",
    "MeetingNotReadyError",
    "Page",
    "Paging",
    "Participant",
    "PollSchedule",
    "Preset",
    "RealtimeKit",
    "RealtimeKitBadRequestError",
    "RealtimeKitError",
    "RealtimeKitNotFoundError",
    "RealtimeKitServerError",
    "UpstreamError",
    "_to_realtimekit_error",
    "_upstream_errors",
]
