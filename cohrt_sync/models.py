"""Immutable value objects, and the argument checks run before any network call."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Mapping, Optional

import attrs

from .errors import BadRequestError, InvalidArgumentTypeError, ProtocolError

__all__ = ["MAX_CREATED_AT_MS", "MAX_ID", "Message", "PublishAck", "Token", "User", "ws_url"]

#: Longest channel name the client accepts.
MAX_CHANNEL_LENGTH = 256

#: The largest ``id`` a message can have: SQLite's largest row id.
MAX_ID = 2**63 - 1

#: The latest ``created_at_ms`` accepted: the last millisecond of the year
#: 9999 UTC, the last a ``datetime`` holds (and well inside a float's exact
#: integers), so a hook can always turn it into a date.
MAX_CREATED_AT_MS = 253_402_300_799_999

#: Longest ``Idempotency-Key`` the local server accepts (docs/server.md).
MAX_IDEMPOTENCY_KEY_LENGTH = 256


@attrs.frozen
class User:
    """A user in a channel's presence.

    :param id: the user id, always a string (numeric ids arrive as ``"30"``).
    :param name: display name from the token, or ``None``.
    :param last_seen: ISO-8601 UTC time of a ``leave``; ``None`` otherwise.
    """

    id: str
    name: Optional[str] = None
    last_seen: Optional[str] = attrs.field(default=None, eq=False)

    @classmethod
    def from_wire(cls, raw: Any, last_seen: Optional[str] = None) -> User:
        """Build from a presence entry ``{"id": ..., "name": ...}``.

        :param raw: the decoded JSON object.
        :param last_seen: the ``last_seen`` of a ``leave`` frame.
        """
        if not isinstance(raw, Mapping):
            return cls(id=str(raw), name=None, last_seen=last_seen)
        name = raw.get("name")
        return cls(
            id=str(raw.get("id")),
            name=None if name is None else str(name),
            last_seen=last_seen,
        )


@attrs.frozen
class Message:
    """A publication on a channel, live or from history.

    :param channel: the channel name.
    :param event: the event type (``"message"``, ``"typing"``, ``"dm_request"`` …).
    :param action: the legacy field; same value as ``event``.
    :param data: the decoded JSON payload.
    :param created_at_ms: server time of publication, in ms since the epoch.
    :param id: the persisted row id, or ``None`` where the server gave none.
    """

    channel: str
    event: str
    action: str
    data: Any
    created_at_ms: Optional[int] = None
    id: Optional[int] = None

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any], channel: Optional[str] = None) -> Message:
        """Build from a live frame or a history item.

        ``id`` and ``created_at_ms`` decide order and de-duplication, so a
        value that cannot be one is refused, not guessed at: an ``id`` must be
        an integer from 1 to :data:`MAX_ID`, a ``created_at_ms`` a finite
        number from 0 to :data:`MAX_CREATED_AT_MS` (a float is truncated).
        Either may be absent or ``null``.

        :param raw: the decoded JSON object.
        :param channel: channel name to use when the item lacks one.
        :raises ProtocolError: ``id`` or ``created_at_ms`` is out of range or
            not a number (``1e400`` decodes as infinity, which no int holds).
        """
        # Every live message passes here: exact-type tests skip the
        # conversions a well-formed frame does not need.
        get = raw.get
        action = get("action")
        event = get("event") or action or "message"
        if not action:
            action = event
        if type(event) is not str:
            event = str(event)
        if type(action) is not str:
            action = str(action)
        name = get("channel") or channel or ""
        if type(name) is not str:
            name = str(name)
        created = get("created_at_ms")
        if type(created) is int:
            if not 0 <= created <= MAX_CREATED_AT_MS:
                raise _out_of_range("created_at_ms", created)
        elif created is not None:
            created = _created_at_ms(created)
        msg_id = get("id")
        if type(msg_id) is int:
            if not 0 < msg_id <= MAX_ID:
                raise _out_of_range("id", msg_id)
        elif msg_id is not None:
            if isinstance(msg_id, bool) or not isinstance(msg_id, int) or not 0 < msg_id <= MAX_ID:
                raise _out_of_range("id", msg_id)
            msg_id = int(msg_id)
        return cls(name, event, action, get("data"), created, msg_id)


def _out_of_range(field: str, value: Any) -> ProtocolError:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return ProtocolError(f"{field} is {shown}, not a number the API sends")


def _created_at_ms(value: Any) -> int:
    """A ``created_at_ms`` that is not an exact int: a finite float in range, truncated."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _out_of_range("created_at_ms", value)
    # NaN fails both comparisons; infinity the upper one.
    if not 0 <= value <= MAX_CREATED_AT_MS:
        raise _out_of_range("created_at_ms", value)
    return int(value)


def _ack_number(value: Any, exact: bool) -> Optional[int]:
    """An acknowledgement's ``id`` (``exact``) or ``created_at_ms`` as
    :meth:`Message.from_wire` reads it, or None where that would refuse it."""
    if isinstance(value, bool) or not isinstance(value, int if exact else (int, float)):
        return None
    if not (0 < value <= MAX_ID if exact else 0 <= value <= MAX_CREATED_AT_MS):
        return None
    return int(value)


@attrs.frozen
class Token:
    """A WebSocket connection token minted by :meth:`cohrt_sync.Client.mint_token`.

    :param token: the JWT to pass as ``?token=``; hidden from ``repr``.
    :param expires_in: lifetime in seconds.
    :param user_id: the user id it was minted for (a string).
    :param name: the display name it carries, if any.
    :param base_url: the API root of the client that minted it, which
        :meth:`ws_url` turns into the socket URL.
    """

    token: str = attrs.field(repr=False)
    expires_in: int
    user_id: Optional[str] = None
    name: Optional[str] = None
    base_url: Optional[str] = None

    def ws_url(self, channel: str) -> str:
        """The full ``ws(s)://…/edge/realtime?token=…&channel=…`` URL of ``channel``.

        What a browser (or any WebSocket client) connects to with this token:
        ``https`` becomes ``wss``, ``http`` ``ws``. It holds the token, so
        treat it as the token: answer it to its user only, never log it.

        :param channel: the channel name.
        :raises BadRequestError: invalid channel, or a token built without
            ``base_url`` (one not minted by a client).
        """
        check_channel(channel)
        if not self.base_url:
            raise BadRequestError(
                "this token has no base_url: mint it with Client.mint_token, "
                "or build it with Token(..., base_url=...)"
            )
        return ws_url(self.base_url, self.token, channel)


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


@attrs.frozen
class PublishAck:
    """The server's acknowledgement of a publish (HTTP response or ``published`` frame).

    The same value from :meth:`cohrt_sync.Channel.publish` and
    :meth:`cohrt_sync.Client.publish`: it describes the message that was
    published, as its recipients and history will see it.

    :param channel: the channel published to.
    :param event: the event of the published message, over a socket too (where
        the ack frame's own ``event`` field is the literal ``"published"``).
    :param action: the published message's ``action``, which the API makes
        equal to its ``event`` (the legacy name of the same field, as
        :attr:`Message.action`); never the kind of the ack frame.
    :param created_at_ms: server time of publication (None when the server
        gave none, or one out of range).
    :param id: the persisted row id, when the server reports it.
    """

    channel: str
    event: str
    action: str
    created_at_ms: Optional[int] = None
    id: Optional[int] = None

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any], channel: str, event: str) -> PublishAck:
        """Build from a decoded acknowledgement.

        The publish succeeded, so a number out of range (``created_at_ms`` or
        ``id``, see :meth:`Message.from_wire`) is left out as None rather
        than refused.

        :param raw: the decoded JSON object.
        :param channel: the channel, when the ack omits it.
        :param event: the event, when the ack omits it.
        """
        published = str(raw.get("event") or event)
        return cls(
            channel=str(raw.get("channel") or channel),
            event=published,
            action=published,
            created_at_ms=_ack_number(raw.get("created_at_ms"), exact=False),
            id=_ack_number(raw.get("id"), exact=True),
        )


def check_text(text: str, what: str) -> str:
    """Return ``text`` if it can be sent as UTF-8, else raise.

    A lone UTF-16 surrogate (``"\\ud800"``, as a bad decode or a JavaScript
    bridge can leave in a ``str``) has no UTF-8 form: without this check it
    surfaces as a ``UnicodeEncodeError`` from deep in the transport.

    :param text: the string to check.
    :param what: what it is, for the error message.
    :raises BadRequestError: when ``text`` holds a lone surrogate.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadRequestError(
                f"{what} holds a lone surrogate at index {e.start}, which has no "
                "UTF-8 form; remove it or pair it"
            ) from None
    return text


def check_channel(channel: object) -> str:
    """Return ``channel`` if it is a valid channel name, else raise.

    :param channel: a non-empty string of at most 256 characters.
    :raises BadRequestError: when invalid.
    """
    if not isinstance(channel, str):
        raise InvalidArgumentTypeError(f"channel must be a str, not {type(channel).__name__}")
    if not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise BadRequestError(
            f"channel must be 1 to {MAX_CHANNEL_LENGTH} characters, got {len(channel)}"
        )
    return check_text(channel, "channel")


def check_user_id(user_id: object) -> str:
    """Normalise a user id to the string the server uses.

    :param user_id: a non-empty ``str`` or an ``int`` (not ``bool``).
    :raises BadRequestError: when invalid.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise InvalidArgumentTypeError(
            f"user_id must be a str or int, not {type(user_id).__name__}"
        )
    text = str(user_id)
    if not text.strip():
        raise BadRequestError("user_id must not be empty")
    return check_text(text, "user_id")


def check_name(name: object) -> Optional[str]:
    """Check a display name.

    :param name: a ``str``, or ``None`` for no name.
    :raises BadRequestError: when invalid.
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidArgumentTypeError(f"name must be a str or None, not {type(name).__name__}")
    return check_text(name, "name")


def check_ttl(ttl: object) -> int:
    """Check a token lifetime.

    :param ttl: an ``int`` between 60 and 3600 seconds.
    :raises BadRequestError: when invalid.
    """
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidArgumentTypeError(f"ttl must be an int, not {type(ttl).__name__}")
    if not 60 <= ttl <= 3600:
        raise BadRequestError(f"ttl must be between 60 and 3600 seconds, got {ttl}")
    return ttl


def check_limit(limit: object) -> int:
    """Check a history page size.

    :param limit: an ``int`` between 1 and 100.
    :raises BadRequestError: when invalid.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidArgumentTypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= 100:
        raise BadRequestError(f"limit must be between 1 and 100, got {limit}")
    return limit


def check_after(after: object) -> int:
    """Check a history cursor.

    :param after: an ``int`` >= 0.
    :raises BadRequestError: when invalid.
    """
    if isinstance(after, bool) or not isinstance(after, int):
        raise InvalidArgumentTypeError(f"after must be an int, not {type(after).__name__}")
    if after < 0:
        raise BadRequestError(f"after must be >= 0, got {after}")
    return after


def check_event(event: object) -> str:
    """Check an event name.

    :param event: a non-empty string.
    :raises BadRequestError: when invalid.
    """
    if not isinstance(event, str):
        raise InvalidArgumentTypeError(f"event must be a str, not {type(event).__name__}")
    if not event:
        raise BadRequestError("event must not be empty")
    return check_text(event, "event")


def check_idempotency_key(key: object) -> str:
    """Check an ``Idempotency-Key``: it travels as an HTTP header value.

    :param key: 1 to 256 printable ASCII characters (no CR, LF or other
        control characters, which no header can carry).
    :raises BadRequestError: when invalid.
    """
    if not isinstance(key, str):
        raise InvalidArgumentTypeError(
            f"idempotency_key must be a str, not {type(key).__name__}"
        )
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not (
        key.isascii() and key.isprintable() and key.strip() == key
    ):
        raise BadRequestError(
            f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII "
            "characters with no leading or trailing space (an HTTP header carries it)"
        )
    return key


def check_data(data: object, what: str = "data") -> str:
    """Check that ``data`` is JSON-serialisable; return its compact encoding.

    :param data: any JSON value (``None`` is refused: the server requires ``data``).
    :param what: what it is, for the error message.
    :raises BadRequestError: when it cannot be encoded.
    """
    if data is None:
        raise BadRequestError(f"{what} is required (None is not allowed)")
    try:
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadRequestError(f"{what} is not JSON-serialisable: {e}") from e
    # Keys and values alike: the encoded text holds every string of data.
    return check_text(encoded, what)


def publish_frame(
    event: str, encoded_data: str, persist: bool, *, channel: Optional[str] = None
) -> str:
    """The JSON text of a publish: a socket frame, or with ``channel`` the HTTP body.

    :param event: the event type.
    :param encoded_data: the payload as :func:`check_data` encoded it.
    :param persist: store in history (``false`` is sent only when off).
    :param channel: the channel name, for ``POST /edge/realtime``; without it
        the socket's ``{"action": "publish", ...}`` frame.
    """
    head = (
        '{"action":"publish",'
        if channel is None
        else f'{{"channel":{json.dumps(channel, ensure_ascii=False)},'
    )
    persist_part = "" if persist else ',"persist":false'
    return (
        f'{head}"event":{json.dumps(event, ensure_ascii=False)},'
        f'"data":{encoded_data}{persist_part}}}'
    )
