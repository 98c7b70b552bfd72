"""A publish waiting for its turn in a tenant's sequencer (:class:`Pending`),
and the ways it can fail to get one."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import attrs

if TYPE_CHECKING:
    from .hub import Conn


@attrs.define(eq=False)
class Pending:
    """A publish waiting for its turn: persisted, acknowledged and broadcast in order."""

    channel: str
    event: str
    data_json: str
    persist: bool
    created_at_ms: int
    #: The socket to answer on, or None for HTTP (which awaits ``future``).
    sender: Optional[Conn] = None
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
