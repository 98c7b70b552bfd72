"""The HTTP calls a channel makes, as a narrow port, and the catch-up anchor read through it.

A channel mints a token for each socket, reads history pages to catch up,
and reads its catch-up anchor once subscribed. It is given an
:class:`HttpPort` for those three calls, not the client: the client's
:class:`~cohrt_sync.http_api.HttpApi` is one, and so is a
:class:`~cohrt_sync.Client`, which is how web routes can use
:func:`catch_up_anchor` too.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Union

from ._answers import wrong_shape
from .errors import ChannelClosedError, CohrtError
from .models import Message, Token

__all__ = ["ANCHOR_QUERY", "HttpPort", "catch_up_anchor", "iter_history"]

log = logging.getLogger("cohrt_sync.channel")

#: The anchor's query: the highest persisted id of one channel (0 when none).
ANCHOR_QUERY = "SELECT COALESCE(MAX(id), 0) AS last_id FROM realtime_messages WHERE channel = ?"


class HttpPort(Protocol):
    """The three HTTP calls of a channel (signatures as :class:`~cohrt_sync.Client`'s)."""

    def mint_token(
        self, user_id: Union[str, int], name: Optional[str] = None, ttl: int = 300
    ) -> Token:
        """A connection token for one socket."""
        ...

    def history(self, channel: str, after: int = 0, limit: int = 50) -> List[Message]:
        """One page of persisted messages past ``after``, oldest first."""
        ...

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Rows of a direct-SQL query (a channel runs only :data:`ANCHOR_QUERY`)."""
        ...


def iter_history(
    port: HttpPort, channel: str, after: int = 0, page_size: int = 100
) -> Iterator[Message]:
    """Every persisted message of ``channel`` with ``id > after``, page by page, lazily.

    The port's ``history`` checks that every id is past the cursor, so each
    page advances it.

    :param port: where the pages are read.
    :param channel: the channel name.
    :param after: id cursor (exclusive).
    :param page_size: messages per request, 1 to 100.
    """
    cursor = after
    while True:
        page = port.history(channel, after=cursor, limit=page_size)
        if not page:
            return
        yield from page
        cursor = page[-1].id or cursor


def catch_up_anchor(port: HttpPort, channel: str) -> Optional[int]:
    """The highest persisted id of ``channel`` now: a catch-up starts after it.

    Read with direct SQL, whose answer is checked; where SQL is refused or
    fails, by walking the whole history. Live frames may carry no id (the
    cloud's don't), so without this a first reconnect could not tell where
    a subscription began.

    :param port: the HTTP calls.
    :param channel: the channel name.
    :returns: the id (0 for an empty channel), or None when neither way
        could read it (a catch-up then delivers what is newer than the
        subscription).
    :raises ChannelClosedError: the channel closed meanwhile.
    """
    try:
        rows = port.sql(ANCHOR_QUERY, params=[channel])
        value = rows[0].get("last_id") if rows else 0
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise wrong_shape("the catch-up anchor of subscribe (POST /edge/database)",
                              "last_id is not a non-negative integer")
        return value
    except ChannelClosedError:
        raise
    except CohrtError as e:
        log.warning("channel %s: SQL anchor failed (%s); walking history", channel, e)
    try:
        last = 0
        for msg in iter_history(port, channel):
            last = msg.id or last
        return last
    except ChannelClosedError:
        raise
    except CohrtError as e:
        log.warning("channel %s: no catch-up anchor (%s)", channel, e)
        return None
