"""The spec's DM pattern: a sorted ``dm:<a>_<b>`` channel and a ``dm_request`` notification.

1. Each user keeps a socket open on their personal ``user:<id>`` channel.
2. To start a DM, the server side publishes ``dm_request`` to the other
   user's personal channel over HTTP (:func:`send_dm_request`).
3. The recipient's ``on_dm_request`` hook fires (the built-in
   :class:`DmRequestRouter` plugin, registered as ``cohrt_sync.dm``, fires
   it); it opens the DM channel (:func:`accept_dm_request`) and fetches history.

A connection token opens *any* channel of the tenant, so ``dm:3_17`` is
readable by anyone who can guess it. :func:`private_channel` derives names
only the holder of a server-side secret can compute (see docs/flask.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Tuple, Union

from .errors import BadRequestError
from .hookspecs import hookimpl
from .models import PublishAck, check_user_id

if TYPE_CHECKING:
    from .channel import Channel
    from .models import Message

__all__ = [
    "DmRequestRouter",
    "Publisher",
    "accept_dm_request",
    "dm_channel",
    "dm_request",
    "private_channel",
    "send_dm_request",
    "user_channel",
]

UserId = Union[str, int]


#: Longer ids cannot make a valid channel name; they sort as names (int()
#: refuses strings of over 4300 digits, which a hostile dm_request may send).
_MAX_NUMERIC_ID = 256


def _sort_key(user_id: str) -> tuple[int, int, str]:
    # Numbers sort numerically and before names, so 3 < 17 < "alice" on both sides.
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if user_id.isdecimal() and len(user_id) <= _MAX_NUMERIC_ID:
        return (0, int(user_id), user_id)
    return (1, 0, user_id)


def dm_channel(a: UserId, b: UserId) -> str:
    """The DM channel name both users compute: ``dm:<low>_<high>``.

    >>> dm_channel(17, 3)
    'dm:3_17'

    :param a: one user id (``str`` or ``int``).
    :param b: the other user id.
    :raises BadRequestError: for an invalid id.
    """
    ids = sorted((check_user_id(a), check_user_id(b)), key=_sort_key)
    return f"dm:{ids[0]}_{ids[1]}"


#: Shortest secret :func:`private_channel` accepts, in bytes (128 bits).
MIN_SECRET_BYTES = 16


def private_channel(secret: Union[str, bytes], *parts: UserId, prefix: str = "private") -> str:
    """An unguessable channel name: ``<prefix>:`` and a keyed HMAC of ``parts``.

    ``HMAC-SHA256(secret, JSON list of the parts as strings)``, cut to 128
    bits (32 hex digits). The same secret and parts always give the same
    name, so every process of an app computes it; without the secret nobody
    can, even knowing the parts. Keep the secret on the server (Flask's
    ``SECRET_KEY`` will do) and hand the name only to users the app
    authorised for it. Parts are used in order: for a DM sort the ids
    first, as :func:`dm_channel` does.

    >>> private_channel("0123456789abcdef", "dm", 3, 17)[:8]
    'private:'

    :param secret: the server-side key, at least 16 bytes.
    :param parts: what the channel is for (``"dm", 3, 17``); ``str`` or ``int``.
    :param prefix: the readable start of the name (it reveals only the kind).
    :raises BadRequestError: a short or missing secret, no parts, a bad part.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(key, bytes) or len(key) < MIN_SECRET_BYTES:
        raise BadRequestError(
            f"private_channel needs a secret of at least {MIN_SECRET_BYTES} bytes "
            "(for example secrets.token_hex(32), kept on the server)"
        )
    if not parts:
        raise BadRequestError("private_channel needs at least one part, like 'dm', 3, 17")
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise BadRequestError(
                f"private_channel parts must be str or int, not {type(part).__name__}"
            )
    if not isinstance(prefix, str) or not prefix or ":" in prefix:
        raise BadRequestError("prefix must be a non-empty str without ':'")
    # JSON keeps ("a:b", "c") and ("a", "b:c") apart.
    message = json.dumps([str(p) for p in parts], ensure_ascii=False).encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
    return f"{prefix}:{digest}"


def user_channel(user_id: UserId) -> str:
    """The personal notification channel of a user: ``user:<id>``.

    :param user_id: the user id.
    """
    return f"user:{check_user_id(user_id)}"


def dm_request(
    from_user: UserId, to_user: UserId, extra: Optional[Mapping[str, Any]] = None
) -> Tuple[str, Dict[str, Any]]:
    """The channel and data of the spec's ``dm_request`` from one user to another.

    The data is ``{"from": <from_user>, "dm_channel": dm_channel(from, to)}``
    plus ``extra``; the channel is the recipient's :func:`user_channel`.

    :param from_user: the requesting user id.
    :param to_user: the recipient user id.
    :param extra: more JSON fields for the notification.
    :raises BadRequestError: for an invalid id.
    """
    sender = check_user_id(from_user)
    data = {**dict(extra or {}), "from": sender, "dm_channel": dm_channel(sender, to_user)}
    return user_channel(to_user), data


class Publisher(Protocol):
    """What :func:`send_dm_request` publishes with: a :class:`~cohrt_sync.Client`
    (its HTTP publish), or anything with the same ``publish``."""

    def publish(self, channel: str, data: Any, event: str = "message") -> PublishAck:
        """Publish ``data`` on ``channel`` over HTTP and return the ack."""
        ...


def send_dm_request(
    client: Publisher,
    from_user: UserId,
    to_user: UserId,
    *,
    extra: Optional[Mapping[str, Any]] = None,
) -> PublishAck:
    """Publish the spec's ``dm_request`` to ``user:<to_user>`` over HTTP.

    The data is ``{"from": <from_user>, "dm_channel": dm_channel(from, to)}``
    plus ``extra`` (:func:`dm_request`). It is persisted so a recipient who
    reconnects still gets it.

    :param client: the client to publish with.
    :param from_user: the requesting user id.
    :param to_user: the recipient user id.
    :param extra: more JSON fields for the notification.
    :returns: the publish acknowledgement.
    """
    channel, data = dm_request(from_user, to_user, extra)
    return client.publish(channel, data, event="dm_request")


def accept_dm_request(
    channel: Channel,
    message: Message,
    *,
    expected_channel: Optional[str] = None,
    trust_named_channel: bool = False,
    **kwargs: Any,
) -> Channel:
    """Open the DM channel named in a ``dm_request``, as the same user as ``channel``.

    Call it from an ``on_dm_request`` hook. Anyone holding a token can publish
    a ``dm_request`` on ``user:<you>``, naming any channel, so the named
    channel is joined only when it is the DM of this user and the request's
    ``from``: ``dm_channel(channel.user_id, from)``, or ``expected_channel``
    when the app names its DMs another way (with :func:`private_channel`, say).

    :param channel: the personal channel the request arrived on.
    :param message: the ``dm_request`` message.
    :param expected_channel: the DM channel the app computed for this request;
        by default :func:`dm_channel` of the recipient and the sender.
    :param trust_named_channel: join whatever channel the request names (only
        for requests the app itself has verified).
    :param kwargs: passed on to :meth:`cohrt_sync.Client.subscribe`.
    :returns: the subscribed DM :class:`~cohrt_sync.Channel`.
    :raises BadRequestError: when the request names no DM channel, or a
        channel other than the expected one.
    """
    data = message.data if isinstance(message.data, Mapping) else {}
    name = data.get("dm_channel")
    if not isinstance(name, str) or not name:
        raise BadRequestError("dm_request carries no valid dm_channel")
    if not trust_named_channel:
        if expected_channel is None:
            sender = data.get("from")
            if isinstance(sender, bool) or not isinstance(sender, (str, int)):
                raise BadRequestError("dm_request carries no valid 'from' user id")
            expected_channel = dm_channel(channel.user_id, sender)
        if name != expected_channel:
            raise BadRequestError(
                f"dm_request names {name!r}, not the expected DM {expected_channel!r}; "
                "refusing to join a channel the sender chose (pass expected_channel= "
                "for your own naming)"
            )
    kwargs.setdefault("name", channel.user_name)
    kwargs.setdefault("ttl", channel.ttl)
    opened: Channel = channel.client.subscribe(name, channel.user_id, **kwargs)
    return opened


class DmRequestRouter:
    """Built-in plugin turning a ``dm_request`` publication into ``on_dm_request``."""

    @hookimpl(trylast=True)
    def on_message(self, channel: Channel, message: Message) -> None:
        """Fire ``on_dm_request`` after every other ``on_message`` saw the message."""
        if message.event == "dm_request":
            channel.hooks.call("on_dm_request", message=message)
