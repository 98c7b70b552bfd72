"""A publish waiting for its turn in a tenant's sequencer (:class:`Pending`),
and the ways it can fail to get one."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

import attrs

from ._json import dumps


class Sender(Protocol):
    """Where a publish's answer goes: its socket (:class:`.hub.Conn`)."""

    def send(self, frame: str) -> None:
        """Queue a frame for the socket."""


@attrs.define(eq=False)
class Pending:
    """A publish waiting for its turn: persisted, acknowledged and broadcast in order."""

    channel: str
    event: str
    data_json: str
    persist: bool
    created_at_ms: int
    #: The socket to answer on, or None for HTTP (which awaits ``future``).
    sender: Optional[Sender] = None
    future: Optional[asyncio.Future[Dict[str, Any]]] = None
    #: A refusal decided before queueing, answered in order with the others.
    error: Optional[str] = None
    id: Optional[int] = None
    #: Stored with the row, in its transaction, so a retry after a restart replays.
    idempotency_key: Optional[str] = None
    #: Usage buckets the publish is counted in, in the transaction that
    #: stores the batch (see :mod:`.usage`); empty when the tier keeps no count.
    counts: Tuple[str, ...] = ()
    #: A publish forwarded from another node's socket: (node, reference) to answer.
    reply_to: Optional[Tuple[str, int]] = None
    #: Its live frame and its ack, encoded once when it is sequenced.
    frame: Optional[str] = None
    ack: Optional[str] = None
    #: Not a publish but a barrier (:meth:`.hub.Hub.after_queued`): called in its turn.
    on_turn: Optional[Callable[[], None]] = None

    @classmethod
    def stored(cls, row: Tuple[int, str, str, str, int]) -> Optional[Pending]:
        """A stored row (id, channel, event, data, ms) to broadcast again; None if
        its data is not the JSON a publish stores (direct SQL wrote it)."""
        id_, channel, event, data, created = row
        try:
            json.loads(data)  # a BLOB fails here too
        except (TypeError, ValueError, RecursionError):
            return None
        return cls(channel, event, data, True, int(created), id=id_)

    def encode(self, live_ids: bool) -> None:
        """Build the ack and live frame, once for every socket and node.

        :param live_ids: put the id in them (the server's ``live_ids``).
        """
        if self.error is not None:
            return
        show_id = self.id is not None and live_ids
        channel_json = dumps(self.channel)
        id_suffix = ',"id":%d' % self.id if show_id and self.id is not None else ""
        self.ack = _ACK % (channel_json, self.created_at_ms, id_suffix)
        # `data` is spliced in as the JSON text it was validated as.
        event = dumps(self.event)
        self.frame = '{"action":%s,"event":%s,"channel":%s,"data":%s,"created_at_ms":%d%s}' % (
            event,
            event,
            channel_json,
            self.data_json,
            self.created_at_ms,
            id_suffix,
        )


_ACK = '{"action":"published","event":"published","channel":%s,"created_at_ms":%d%s}'


class PersistError(Exception):
    """A persisted publish could not be written; nothing was broadcast."""


class ShuttingDown(Exception):
    """The server is stopping and takes no more publishes."""


def counts(batch: List[Pending]) -> List[Tuple[str, int]]:
    """How much each usage bucket grows by ``batch``."""
    grow: Dict[str, int] = collections.Counter()
    for p in batch:
        for bucket in p.counts:
            grow[bucket] += 1
    return list(grow.items())


__all__ = ["Pending", "PersistError", "ShuttingDown", "counts"]
