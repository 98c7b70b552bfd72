"""The shape of the server's answers, checked once where each is decoded.

A server that answers 200 with a body the API never sends (a buggy proxy, an
overloaded edge, a hostile endpoint) must not reach the caller as a bare
``TypeError`` three frames later. Each function here takes a decoded answer
and returns it in the shape the client uses, or raises
:class:`~cohrt_sync.ProtocolError` naming the endpoint.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .errors import ProtocolError
from .models import Message

__all__ = ["history_page", "json_object", "sql_rows", "token_answer", "wrong_shape"]


def wrong_shape(context: str, what: str) -> ProtocolError:
    """The error for an answer of the wrong shape (not raised).

    :param context: what was attempted, naming the endpoint.
    :param what: what is wrong with the answer.
    """
    return ProtocolError(
        f"{context}: the server's answer has the wrong shape ({what}); "
        "the server is not following the API: retry later or report it"
    )


def json_object(raw: Any, context: str) -> Dict[str, Any]:
    """``raw`` when it is a JSON object.

    :param raw: the decoded body.
    :param context: what was attempted, naming the endpoint.
    """
    if not isinstance(raw, dict):
        raise wrong_shape(context, f"a {type(raw).__name__}, not an object")
    return raw


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def token_answer(raw: Any, context: str, ttl: int) -> Tuple[str, int]:
    """``(token, expires_in)`` of a token answer.

    :param raw: the decoded body.
    :param context: what was attempted, naming the endpoint.
    :param ttl: the lifetime asked for, used when the answer gives none.
    """
    body = json_object(raw, context)
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise wrong_shape(context, "no token")
    expires_in = body.get("expires_in", ttl)
    if not _is_int(expires_in) or expires_in <= 0:
        raise wrong_shape(context, "expires_in is not a positive integer")
    return token, expires_in


def sql_rows(raw: Any, context: str) -> List[Dict[str, Any]]:
    """The rows of a direct-SQL answer.

    :param raw: the decoded body.
    :param context: what was attempted, naming the endpoint.
    """
    rows = json_object(raw, context).get("results")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise wrong_shape(context, "results is not a list of objects")
    return rows


def history_page(raw: Any, context: str, channel: str, after: int) -> List[Message]:
    """The messages of one history page, checked as exactly-once delivery needs them.

    Ids must be integers, strictly increasing and past ``after``, and every
    row must belong to ``channel``: a page that repeats, reorders or mixes in
    another channel's rows would otherwise be delivered as it came.

    :param raw: the decoded body.
    :param context: what was attempted, naming the endpoint.
    :param channel: the channel asked for.
    :param after: the cursor asked for.
    """
    items = json_object(raw, context).get("messages")
    if not isinstance(items, list):
        raise wrong_shape(context, "messages is not a list")
    page: List[Message] = []
    last = after
    for item in items:
        if not isinstance(item, dict) or "data" not in item:
            raise wrong_shape(context, "an item is not a message object")
        msg_id: Any = item.get("id")
        if not _is_int(msg_id):
            raise wrong_shape(context, "an item has no integer id")
        if msg_id <= last:
            raise wrong_shape(
                context, f"id {msg_id} is not past {last}: ids must increase past the cursor"
            )
        last = msg_id
        row_channel: Optional[Any] = item.get("channel")
        if row_channel is not None and row_channel != channel:
            raise wrong_shape(context, "an item belongs to another channel")
        event = item.get("event", item.get("action"))
        if event is not None and not isinstance(event, str):
            raise wrong_shape(context, "an item's event is not a string")
        page.append(Message.from_wire(item, channel))
    return page
