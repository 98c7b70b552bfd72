"""What the realtime routes accept from a browser, checked before anything is sent on.

Plain functions over the request's bytes and decoded values, free of any
web framework. Every refusal is a 400 :class:`~cohrt_sync.web.errors.RouteError`
that names the field, so a hostile body gets the JSON error envelope, never
a 500.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

import attrs

from ..models import check_channel
from .errors import RouteError

__all__ = [
    "ROUTE_MAX_NEWEST",
    "PublishRequest",
    "bad_request",
    "body_object",
    "channel_arg",
    "check_text",
    "int_arg",
    "json_body",
    "newest_arg",
    "publish_request",
    "scoped_idempotency_key",
]

#: The most messages ``GET history?newest=N`` answers at once (a history page's cap).
ROUTE_MAX_NEWEST = 100

#: Longest ``Idempotency-Key`` a browser may send; the route adds the user's
#: scope in front, and the API takes at most 256 characters in all.
MAX_IDEMPOTENCY_KEY = 128


def bad_request(message: str) -> RouteError:
    """A 400 ``INVALID_ARGUMENT`` answer.

    :param message: one line: which field is wrong and how to send it.
    """
    return RouteError(message, 400, "INVALID_ARGUMENT")


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_text(value: Any, where: str) -> None:
    """Refuse ``value`` if any string in it, key or value, is not valid Unicode.

    JSON's ``"\\ud800"`` escape decodes to a lone UTF-16 surrogate, which no
    UTF-8 encoder (the HTTP client's, the API's) can send. The walk is a
    loop, not a recursion, so a deeply nested value cannot overflow it.

    :param value: a decoded JSON value.
    :param where: the field's name, for the message (``data``).
    :raises RouteError: 400, naming the field.
    """
    stack: List[Tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _lone_surrogate(item):
                raise bad_request(
                    f"{path} holds a lone UTF-16 surrogate (like \\ud800): send valid Unicode text"
                )
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and _lone_surrogate(key):
                    raise bad_request(
                        f"a key in {path} holds a lone UTF-16 surrogate (like \\ud800): "
                        "send valid Unicode text"
                    )
                stack.append((inner, f"{path}.{key}" if len(path) < 80 else path))
        elif isinstance(item, list):
            stack.extend((inner, path) for inner in item)


def body_object(body: Any) -> Dict[str, Any]:
    """The decoded JSON body, if it is an object.

    :param body: what the framework decoded, None when the body was not
        ``application/json`` or not JSON at all.
    :raises RouteError: 400 otherwise.
    """
    if not isinstance(body, dict):
        raise bad_request(
            'send a JSON object with Content-Type: application/json, like {"channel": "chat:lobby"}'
        )
    return body


def _is_json(content_type: Optional[str]) -> bool:
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def json_body(content_type: Optional[str], raw: bytes) -> Dict[str, Any]:
    """The request's body as a JSON object, read only when it is ``application/json``.

    Only JSON is read: a cross-site form can send urlencoded, multipart or
    ``text/plain`` bodies without a CORS preflight, but not JSON, and the
    routes grant no preflight.

    :param content_type: the ``Content-Type`` header, None when absent.
    :param raw: the body's bytes.
    :raises RouteError: 400 when the body is not a JSON object sent as JSON,
        or is nested too deeply to decode.
    """
    parsed: Any = None
    if _is_json(content_type):
        try:
            parsed = json.loads(raw)
        except RecursionError:
            raise bad_request("the JSON body is nested too deeply") from None
        except ValueError:  # not JSON, or not UTF-8
            parsed = None
    return body_object(parsed)


def channel_arg(raw: Any) -> str:
    """The channel a request names.

    :param raw: the body's or the query's ``channel``.
    :raises RouteError: 400 when missing or invalid.
    """
    if raw is None:
        raise bad_request("channel is required")
    check_text(raw, "channel")
    try:
        return check_channel(raw)
    except ValueError as e:  # BadRequestError: the rule's own message
        raise bad_request(str(e)) from None


def int_arg(name: str, raw: Optional[str], default: int) -> int:
    """An integer query argument.

    :param name: its name, for the message.
    :param raw: the query's text, None or empty when absent.
    :param default: the value when absent.
    :raises RouteError: 400 when it is not an integer.
    """
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw[:40]!r}") from None


def newest_arg(raw: Optional[str]) -> Optional[int]:
    """The ``newest`` query argument: how many of the newest messages, or None.

    :param raw: the query's text, None or empty when absent.
    :raises RouteError: 400 unless an integer from 1 to :data:`ROUTE_MAX_NEWEST`.
    """
    if raw is None or raw == "":
        return None
    n = int_arg("newest", raw, 0)
    if not 1 <= n <= ROUTE_MAX_NEWEST:
        raise bad_request(f"newest must be between 1 and {ROUTE_MAX_NEWEST}, got {n}")
    return n


@attrs.frozen
class PublishRequest:
    """A publish a browser asked for, checked: its ``data`` is not yet stamped."""

    #: The channel.
    channel: str
    #: The JSON object to publish.
    data: Dict[str, Any]
    #: The event name (``message`` by default).
    event: str
    #: Whether the message is stored in history.
    persist: bool


def publish_request(body: Dict[str, Any]) -> PublishRequest:
    """Check a publish body: ``{"channel", "data": {...}, "event", "persist"}``.

    :param body: the decoded JSON object.
    :raises RouteError: 400 naming the first field that is wrong.
    """
    channel = channel_arg(body.get("channel"))
    data = body.get("data")
    if not isinstance(data, dict):
        raise bad_request('data must be a JSON object, like {"text": "hi"}')
    check_text(data, "data")
    event = body.get("event", "message")
    if not isinstance(event, str) or not event:
        raise bad_request('event must be a non-empty string, like "message"')
    check_text(event, "event")
    persist = body.get("persist", True)
    if not isinstance(persist, bool):
        raise bad_request("persist must be true or false")
    return PublishRequest(channel=channel, data=data, event=event, persist=persist)


def scoped_idempotency_key(user_id: str, key: Optional[str]) -> Optional[str]:
    """The ``Idempotency-Key`` to send on for ``user_id``, or None.

    Scoped to the user, so one user's key can never claim (or replay)
    another user's publish. The scope is a digest of the user id, so a long
    id cannot push the key past the API's 256 characters.

    :param user_id: the verified user.
    :param key: the browser's header, None when absent.
    :raises RouteError: 400 unless 1 to 128 visible ASCII characters.
    """
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not all("!" <= ch <= "~" for ch in key):
        raise bad_request(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters, "
            "like a UUID"
        )
    scope = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"u:{scope}:{key}"
