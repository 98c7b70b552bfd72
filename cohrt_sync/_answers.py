"""The shape of the server's answers, checked once where each is decoded.

A server that answers 200 with a body the API never sends (a buggy proxy, an
overloaded edge, a hostile endpoint) must not reach the caller as a bare
``TypeError`` three frames later. Each function here takes a decoded answer
and returns it in the shape the client uses, or raises
:class:`~cohrt_sync.ProtocolError` naming the endpoint.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

from .errors import HistoryPageError, ProtocolError
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


#: The kinds of item a history page must not hold, each named as a report says it.
NOT_A_MESSAGE = "items that are not message objects"
NO_INTEGER_ID = "items without an integer id"
CURSOR_ROW = "the row of the cursor itself (after read as inclusive)"
BELOW_CURSOR = "ids below the cursor"
REPEATED_ID = "an id twice in one page"
OUT_OF_ORDER = "ids out of order"
OTHER_CHANNEL = "rows of another channel"
BAD_EVENT = "an event that is not a string"
BAD_NUMBER = "an id or a time out of range"


def history_page(raw: Any, context: str, channel: str, after: int) -> List[Message]:
    """The messages of one history page, checked as exactly-once delivery needs them.

    The API promises rows of ``channel`` with integer ids past ``after``,
    in increasing order. An answer that is not ``{"messages": [...]}``
    raises :class:`ProtocolError`. A page that holds items breaking that
    promise raises :class:`HistoryPageError`, whose ``messages`` are the
    items that are provably right, in id order: everything past the cursor,
    of this channel and well-formed (a page out of order holds the same
    rows in another order, so they are sorted, not dropped). What is
    dropped: items that are not messages or have no integer id, ids at or
    below ``after``, an id repeated, rows of another channel, an event that
    is not a string, an id or time no int holds.

    :param raw: the decoded body.
    :param context: what was attempted, naming the endpoint.
    :param channel: the channel asked for.
    :param after: the cursor asked for.
    :raises ProtocolError: not an answer of this shape at all.
    :raises HistoryPageError: a page that breaks the promise, with what is right in it.
    """
    items = json_object(raw, context).get("messages")
    if not isinstance(items, list):
        raise wrong_shape(context, "messages is not a list")
    page: List[Message] = []
    problems: Dict[str, str] = {}
    ids: Set[int] = set()
    last = after
    for item in items:
        if not isinstance(item, dict) or "data" not in item:
            problems.setdefault(NOT_A_MESSAGE, f"a {type(item).__name__}")
            continue
        msg_id: Any = item.get("id")
        if not _is_int(msg_id):
            problems.setdefault(NO_INTEGER_ID, f"id {_short(msg_id)}")
            continue
        if msg_id <= after:
            kind = CURSOR_ROW if msg_id == after else BELOW_CURSOR
            problems.setdefault(kind, f"id {_short(msg_id)} for after={after}")
            continue
        row_channel: Optional[Any] = item.get("channel")
        if row_channel is not None and row_channel != channel:
            problems.setdefault(OTHER_CHANNEL, f"id {msg_id} of {_short(row_channel)}")
            continue
        event = item.get("event", item.get("action"))
        if event is not None and not isinstance(event, str):
            problems.setdefault(BAD_EVENT, f"id {msg_id}")
            continue
        try:
            msg = Message.from_wire(item, channel)
        except ProtocolError as e:
            problems.setdefault(BAD_NUMBER, str(e))
            continue
        if msg_id in ids:
            problems.setdefault(REPEATED_ID, f"id {msg_id}")
            continue
        ids.add(msg_id)
        if msg_id < last:
            problems.setdefault(OUT_OF_ORDER, f"id {msg_id} after id {last}")
        else:
            last = msg_id
        page.append(msg)
    if not problems:
        return page
    if OUT_OF_ORDER in problems:
        # The same rows in another order (ids are unique): put back in order.
        page.sort(key=_id_of)
    found = "; ".join(f"{kind} ({example})" for kind, example in problems.items())
    raise HistoryPageError(
        f"{context}: the page breaks the API's contract: {found}; the server is not "
        "following the API: retry later or report it",
        context=context,
        problems=problems,
        messages=page,
        served=len(items),
    )


def _id_of(msg: Message) -> int:
    assert msg.id is not None
    return msg.id


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
