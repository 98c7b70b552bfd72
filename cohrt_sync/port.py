"""The HTTP calls a channel makes, as a narrow port, and the catch-up anchor read through it.

A channel mints a token for each socket, reads history pages to catch up,
and reads its catch-up anchor once subscribed. It is given an
:class:`HttpPort` for those three calls, not the client: the client's
:class:`~cohrt_sync.http_api.HttpApi` is one, and so is a
:class:`~cohrt_sync.Client`. The anchor itself is
:func:`cohrt_sync.scrollback.last_id`, which the web routes call too.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Protocol, Sequence, Union

from .errors import ChannelClosedError, CohrtError
from .models import Message, Token
from .scrollback import last_id

__all__ = ["HttpPort", "catch_up_anchor"]

log = logging.getLogger("cohrt_sync.channel")

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
        """Rows of a direct-SQL query (a channel runs only the catch-up anchor's)."""
        ...


def catch_up_anchor(port: HttpPort, channel: str) -> Optional[int]:
    """The highest persisted id of ``channel`` now: a catch-up starts after it.

    :func:`cohrt_sync.scrollback.last_id` reads it (direct SQL with a checked
    answer, or the history walk). Live frames may carry no id (the cloud's
    don't), so without it a first reconnect could not tell where a
    subscription began.

    :param port: the HTTP calls.
    :param channel: the channel name.
    :returns: the id (0 for an empty channel), or None when it could not be
        read (a catch-up then delivers what is newer than the subscription).
    :raises ChannelClosedError: the channel closed meanwhile.
    """
    try:
        return last_id(port, channel)
    except ChannelClosedError:
        raise
    except CohrtError as e:
        log.warning("channel %s: no catch-up anchor (%s)", channel, e)
        return None
