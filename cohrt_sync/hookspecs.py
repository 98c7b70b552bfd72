"""Hook specifications: the docstrings below are the plugin reference.

Implement any subset of these in a plain object or module, decorate each
function with :data:`cohrt_sync.hookimpl`, and register it with
``Client(plugins=[...])``, :meth:`cohrt_sync.Client.register`, or an entry
point in the ``cohrt_sync`` group. An implementation may accept only the
arguments it needs. Hooks for one channel run one at a time, in arrival
order, on that channel's dispatcher thread; an exception is logged and
reported to :func:`on_error`, and never stops the channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import pluggy

if TYPE_CHECKING:
    from .channel import Channel
    from .models import Message, PublishAck, User

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "on_closed",
    "on_connected",
    "on_disconnected",
    "on_dm_request",
    "on_error",
    "on_join",
    "on_leave",
    "on_message",
    "on_published",
    "on_reconnected",
]

#: The pluggy project name, also the entry-point group.
PROJECT_NAME = "cohrt_sync"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def on_message(channel: Channel, message: Message) -> None:
    """A publication arrived on ``channel``, whatever its ``event``.

    Fires for live frames and for messages recovered from history after a
    reconnect (those carry ``message.id``), exactly once each, in order.

    :param channel: the :class:`~cohrt_sync.Channel` it arrived on.
    :param message: the :class:`~cohrt_sync.Message`.
    """


@hookspec
def on_join(channel: Channel, user: User) -> None:
    """A user came into ``channel``'s presence (their first socket opened).

    Also fired after a reconnect for users who arrived during the outage.
    ``channel.presence`` already includes the user.

    :param channel: the :class:`~cohrt_sync.Channel`.
    :param user: the :class:`~cohrt_sync.User` (``id`` is a ``str``).
    """


@hookspec
def on_leave(channel: Channel, user: User, last_seen: Optional[str]) -> None:
    """A user left ``channel``'s presence (their last socket closed).

    Also fired after a reconnect for users who left during the outage; then
    ``last_seen`` is ``None`` because the server did not report it.
    ``channel.presence`` no longer includes the user.

    :param channel: the :class:`~cohrt_sync.Channel`.
    :param user: the :class:`~cohrt_sync.User`; ``user.last_seen`` repeats ``last_seen``.
    :param last_seen: ISO-8601 UTC time from the ``leave`` frame, or ``None``.
    """


@hookspec
def on_dm_request(channel: Channel, message: Message) -> None:
    """A ``dm_request`` publication arrived (after :func:`on_message` for it).

    ``message.data`` is ``{"from": ..., "dm_channel": ...}`` when sent with
    :meth:`cohrt_sync.Client.send_dm_request`; accept it with
    :func:`cohrt_sync.accept_dm_request`.

    :param channel: the personal ``user:<id>`` :class:`~cohrt_sync.Channel`.
    :param message: the :class:`~cohrt_sync.Message` with ``event == "dm_request"``.
    """


@hookspec
def on_connected(channel: Channel) -> None:
    """``channel`` subscribed for the first time (``subscribed`` received).

    :param channel: the :class:`~cohrt_sync.Channel`.
    """


@hookspec
def on_disconnected(channel: Channel, reason: str) -> None:
    """``channel`` lost its socket and is about to reconnect.

    :param channel: the :class:`~cohrt_sync.Channel`.
    :param reason: why (``"server closed (1001)"``, ``"ping timeout"`` …).
    """


@hookspec
def on_reconnected(channel: Channel, attempts: int, caught_up: int) -> None:
    """``channel`` is subscribed again and has delivered the messages it missed.

    Fires after the catch-up messages went through :func:`on_message`.

    :param channel: the :class:`~cohrt_sync.Channel`.
    :param attempts: connection attempts it took.
    :param caught_up: messages recovered from history during the outage.
    """


@hookspec
def on_published(channel: Optional[Channel], ack: PublishAck, seconds: float) -> None:
    """A publish was acknowledged by the server.

    Unlike the other hooks it runs on the **publishing** thread, right after
    the ack arrived (the channel's dispatcher may be busy elsewhere), so keep
    it short. Publishes that fail raise to their caller and do not fire it.
    An exception it raises never fails the publish: it is logged (and, for a
    channel's publish, reported to :func:`on_error` on the same thread).

    :param channel: the :class:`~cohrt_sync.Channel` for
        :meth:`Channel.publish <cohrt_sync.Channel.publish>`; ``None`` for
        :meth:`Client.publish <cohrt_sync.Client.publish>` over HTTP.
    :param ack: the :class:`~cohrt_sync.PublishAck` (``ack.channel`` names the channel).
    :param seconds: from sending the publish to its ack, retries included.
    """


@hookspec
def on_error(channel: Channel, error: BaseException) -> None:
    """Something went wrong that did not stop ``channel``.

    Called for a hook implementation that raised, an ``{"error": ...}`` frame
    that answered no publish, and failed reconnect or catch-up attempts.
    An exception raised here is only logged.

    :param channel: the :class:`~cohrt_sync.Channel`.
    :param error: the exception (a :class:`~cohrt_sync.CohrtError` or the hook's).
    """


@hookspec
def on_closed(channel: Channel) -> None:
    """``channel`` was closed by :meth:`~cohrt_sync.Channel.close`; the last hook call.

    :param channel: the :class:`~cohrt_sync.Channel`.
    """
