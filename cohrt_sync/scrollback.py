"""Reading a channel from its newest end: the newest messages, and the highest id.

History pages only forward from an id, so the newest 50 messages of a
10,000-message channel would take 100 pages. Direct SQL, which the spec
offers for exactly this (``SELECT * FROM realtime_messages WHERE channel = ?
ORDER BY id DESC LIMIT 100``), takes one request. Each function here asks
SQL first and checks the answer's shape; where SQL is refused or unavailable
(or answers in a shape the API never sends) it walks the history instead,
which gives the same answer, only slower.

Both take a :class:`ScrollbackPort`, the two HTTP calls they make, so a
:class:`~cohrt_sync.Client` and any narrower HTTP object serve alike. Ids
count across the whole tenant, not per channel: a channel's ids increase
but skip the rows of every other channel.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Protocol, Sequence, Set

from ._answers import wrong_shape
from .errors import (
    BadRequestError,
    ChannelClosedError,
    CohrtError,
    CohrtTimeoutError,
    HistoryPageError,
    InvalidArgumentTypeError,
    ProtocolError,
    RateLimitedError,
)
from .models import Message, check_channel

__all__ = [
    "LAST_ID_QUERY",
    "MAX_NEWEST",
    "NO_PROGRESS",
    "Report",
    "ScrollbackPort",
    "iter_history",
    "last_id",
    "newest",
    "newest_query",
]

log = logging.getLogger("cohrt_sync.client")

#: The highest persisted id of one channel (0 when it has none).
LAST_ID_QUERY = "SELECT COALESCE(MAX(id), 0) AS last_id FROM realtime_messages WHERE channel = ?"

#: The most messages one :func:`newest` call returns.
MAX_NEWEST = 1000

#: The page size of the history walk.
_PAGE = 100


class ScrollbackPort(Protocol):
    """The two HTTP calls a scrollback makes (signatures as :class:`~cohrt_sync.Client`'s)."""

    def history(self, channel: str, after: int = 0, limit: int = 50) -> List[Message]:
        """One page of persisted messages past ``after``, oldest first, checked."""
        ...

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """The rows of one direct-SQL statement."""
        ...


def newest_query(n: int) -> str:
    """The SQL of :func:`newest`: the spec's own scrollback query, naming its columns.

    ``n`` is written into the text (it is a checked int) rather than bound:
    a JSON number may reach the database as a REAL, which SQLite's ``LIMIT``
    refuses.

    :param n: how many rows, 1 to :data:`MAX_NEWEST`.
    """
    return (
        "SELECT id, channel, event, data, created_at_ms FROM realtime_messages"
        f" WHERE channel = ? ORDER BY id DESC LIMIT {_check_n(n)}"
    )


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidArgumentTypeError(f"n must be an int, not {type(n).__name__}")
    if not 1 <= n <= MAX_NEWEST:
        raise BadRequestError(f"n must be between 1 and {MAX_NEWEST}, got {n}")
    return n


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _worth_walking(error: CohrtError) -> bool:
    """Whether history may answer where SQL failed with ``error``.

    A refusal (SQL not allowed, not found, a 4xx), a server or shape error,
    or a connection error is worth a walk. A timeout or a rate limit is not:
    the walk makes many more calls to the same API, each as likely to hang
    or be refused, so it would only multiply the wait (a web route must
    answer within its worker's timeout). Neither is a closing channel.
    """
    return not isinstance(error, (CohrtTimeoutError, RateLimitedError, ChannelClosedError))


def last_id(port: ScrollbackPort, channel: str) -> int:
    """The highest persisted id of ``channel`` now (0 when it has none).

    A browser's or a channel's catch-up starts after it. Direct SQL first
    (one request, its answer checked); the history walk where SQL fails.

    :param port: the HTTP calls.
    :param channel: the channel name.
    :raises CohrtError: both ways failed (the walk's error), or SQL timed
        out or was rate limited (see :func:`newest`).
    """
    check_channel(channel)
    context = f"the last id of {channel!r} (POST /edge/database)"
    try:
        rows = port.sql(LAST_ID_QUERY, params=[channel])
        value = rows[0].get("last_id") if rows else 0
        if value is None:
            return 0
        if not _is_int(value) or value < 0:
            raise wrong_shape(context, "last_id is not a non-negative integer")
        return int(value)
    except CohrtError as e:
        if not _worth_walking(e):
            raise
        log.warning("%s: SQL failed (%s); walking history", context, e)
    last = 0
    for msg in iter_history(port, channel):
        last = msg.id if msg.id is not None else last
    return last


def newest(port: ScrollbackPort, channel: str, n: int = 50) -> List[Message]:
    """The newest ``n`` persisted messages of ``channel``, oldest first.

    One direct-SQL request where SQL is allowed; its rows must belong to the
    channel, with integer ids in strictly decreasing order and ``data`` that
    decodes as JSON. Where SQL is refused, unavailable, or answers in another
    shape, the history is walked from the start instead (one request per 100
    messages), keeping the last ``n``. A timeout or a rate limit is raised
    at once rather than walked (see :func:`_worth_walking`).

    :param port: the HTTP calls.
    :param channel: the channel name.
    :param n: how many, 1 to :data:`MAX_NEWEST`.
    :raises BadRequestError: a bad argument, before any request.
    :raises CohrtError: the walk failed too, or SQL timed out or was rate limited.
    """
    check_channel(channel)
    query = newest_query(n)
    context = f"the newest messages of {channel!r} (POST /edge/database)"
    try:
        rows = port.sql(query, params=[channel])
        return _messages(rows, channel, n, context)
    except CohrtError as e:
        if not _worth_walking(e):
            raise
        log.warning("%s: SQL failed (%s); walking history", context, e)
    kept: Deque[Message] = collections.deque(maxlen=n)
    kept.extend(iter_history(port, channel))
    return list(kept)


def _messages(rows: List[Dict[str, Any]], channel: str, n: int, context: str) -> List[Message]:
    """SQL rows (newest first) as messages, oldest first; raises on any row of the wrong shape."""
    if len(rows) > n:
        raise wrong_shape(context, f"{len(rows)} rows for LIMIT {n}")
    found: List[Message] = []
    below: Optional[int] = None
    for row in rows:
        msg_id = row.get("id")
        if not isinstance(msg_id, int) or isinstance(msg_id, bool):
            raise wrong_shape(context, "a row has no integer id")
        if below is not None and msg_id >= below:
            raise wrong_shape(context, "ids are not in decreasing order")
        below = msg_id
        if row.get("channel") != channel:
            raise wrong_shape(context, "a row belongs to another channel")
        event = row.get("event")
        if not isinstance(event, str):
            raise wrong_shape(context, "a row's event is not a string")
        created = row.get("created_at_ms")
        if created is not None and not _is_int(created):
            raise wrong_shape(context, "a row's created_at_ms is not an integer")
        text = row.get("data")
        if not isinstance(text, str):
            raise wrong_shape(context, "a row's data is not JSON text")
        try:
            data = json.loads(text)
        except ValueError:
            raise wrong_shape(context, "a row's data is not valid JSON") from None
        found.append(Message(channel, event, event, data, created, msg_id))
    found.reverse()
    return found


#: The kind a report names when a walk stops because the server makes no progress.
NO_PROGRESS = "no progress"

#: Told of each kind of broken history a walk meets: the kind (a short name,
#: the same each time) and the error that says what was dropped.
Report = Callable[[str, ProtocolError], None]


def iter_history(
    port: ScrollbackPort,
    channel: str,
    after: int = 0,
    page_size: int = _PAGE,
    report: Optional[Report] = None,
) -> Iterator[Message]:
    """Every persisted message of ``channel`` with ``id > after``, page by page, lazily.

    A page shorter than ``page_size`` is the last one: the API caps pages at
    100 and this never asks for more, so asking again would only spend one
    more history read of the tier's caps on an empty page.

    Liveness with safety against a server that breaks the API's contract: a
    page that repeats the cursor's row or older ones, comes out of order,
    mixes in another channel's rows or holds items that are not messages
    (:class:`~cohrt_sync.HistoryPageError`) is not refused whole. Its items
    that are provably this channel's next messages are yielded, in id order;
    the rest are dropped, and each kind of problem is told to ``report``
    (without one: logged as a warning, once per kind and walk). A full page
    with nothing past the cursor would be asked for again and again, so the
    walk ends there: it raises :class:`~cohrt_sync.ProtocolError` (with
    ``report``: reports it under :data:`NO_PROGRESS` and ends, having
    yielded all it could).

    :param port: where the pages are read.
    :param channel: the channel name.
    :param after: id cursor (exclusive).
    :param page_size: messages per request, 1 to 100.
    :param report: told of each kind of problem, as ``report(kind, error)``;
        it decides what is reported more than once.
    :raises ProtocolError: the walk stalled (without ``report``), or an
        answer not shaped as a page at all.
    :raises CohrtError: a page could not be read.
    """
    logged: Set[str] = set()

    def tell(kind: str, error: ProtocolError) -> None:
        if report is not None:
            report(kind, error)
        elif kind not in logged:
            logged.add(kind)
            log.warning("%s", error)

    cursor = after
    while True:
        try:
            page = port.history(channel, after=cursor, limit=page_size)
            served = len(page)
        except HistoryPageError as e:
            page, served = e.messages, e.served
            if page or served < page_size:
                for kind, example in e.problems.items():
                    tell(kind, ProtocolError(
                        f"{e.context}: dropped {kind} ({example}) and delivered the rest; "
                        "the server is not following the API: report it"
                    ))
            else:
                stalled = ProtocolError(
                    f"{e.context}: history makes no progress: a full page of {served} items "
                    f"held nothing past id {cursor} ({', '.join(e.problems)}); stopped "
                    f"there, so messages after id {cursor} could not be read: report it"
                )
                if report is None:
                    raise stalled from e
                report(NO_PROGRESS, stalled)
                return
        yield from page
        if served < page_size:
            return
        cursor = page[-1].id or cursor
