"""Publish acknowledgements awaited on one socket, settled first-in first-out.

The server acknowledges a socket's publishes in the order they were sent, so
each ``published`` (or ``{"error": ...}``) frame settles the oldest pending
publish. The channel appends under its send lock, keeping the queue in wire
order.

A publish waits on its own :class:`~cohrt_sync._latch.Latch`, which the
reader sets: one lock, released in one C call, where a ``threading.Event``
would run its Condition's Python on both sides of the hand-off.

The reader matches an ack the moment it reads it, but may hold the
publisher's wake-up (:meth:`AckQueue.settle` with ``wake=False``) until it
is about to read the socket again (:meth:`AckQueue.wake_settled`): the
message that usually arrives in the same read as its ack is then handed to
the dispatcher first, whose thread would otherwise queue for the
interpreter lock behind the publisher's (docs/benchmarks.md, "Where the
microseconds went").
"""

from __future__ import annotations

import collections
import time
from typing import Any, Deque, Dict, List, Optional, Sequence

import attrs

from ._latch import Latch
from .errors import ChannelClosedError, CohrtConnectionError, CohrtError, CohrtTimeoutError
from .models import PublishAck

__all__ = ["AckQueue", "PendingAck", "await_acks"]


@attrs.define(eq=False)
class PendingAck:
    """One publish waiting for its acknowledgement.

    :param event: the published event.
    """

    event: str
    done: Latch = attrs.field(factory=Latch)
    frame: Optional[Dict[str, Any]] = None
    error: Optional[CohrtError] = None
    #: ``time.monotonic()`` when queued (just before its frame is sent) and
    #: when settled: the publish latency ``on_published`` reports.
    sent_at: float = attrs.field(factory=time.monotonic)
    settled_at: float = 0.0


class AckQueue:
    """Pending publishes of one channel, oldest first."""

    __slots__ = ("_pending", "_unwoken")

    def __init__(self) -> None:
        # Made by the first publish: an empty deque is 0.75 KiB, and most
        # sockets of a client that listens never publish.
        self._pending: Optional[Deque[PendingAck]] = None
        #: Settled, not yet woken (the reader's thread only).
        self._unwoken: List[PendingAck] = []

    def add(self, pending: PendingAck) -> None:
        """Queue ``pending`` (call under the lock that also sends its frame)."""
        queue = self._pending
        if queue is None:
            queue = self._pending = collections.deque()
        queue.append(pending)

    def discard(self, pending: PendingAck) -> None:
        """Drop ``pending`` whose frame could not be sent."""
        if self._pending is not None:
            self._pending.remove(pending)

    def settle(
        self, frame: Optional[Dict[str, Any]], error: Optional[CohrtError], wake: bool = True
    ) -> bool:
        """Settle the oldest pending publish with an ack frame or an error.

        :param frame: the ack frame.
        :param error: the error the publish raises, instead.
        :param wake: wake the publisher now; False leaves that to the next
            :meth:`wake_settled` (the reader's thread only).
        :returns: False when no publish was pending.
        """
        queue = self._pending
        if queue is None:
            return False
        try:
            # Not "if queue" first: close() may fail the publishes while the reader settles.
            pending = queue.popleft()
        except IndexError:
            return False
        pending.frame = frame
        pending.error = error
        pending.settled_at = time.monotonic()
        if wake:
            pending.done.set()
        else:
            self._unwoken.append(pending)
        return True

    def wake_settled(self) -> None:
        """Wake the publishers of the acks settled with ``wake=False`` (the reader's thread).

        Settled is settled: a ``close()`` failing the queue meanwhile no
        longer sees them, so they still return their acks.
        """
        unwoken = self._unwoken
        if unwoken:
            for pending in unwoken:
                pending.done.set()
            unwoken.clear()

    def fail_all(self, error: CohrtError) -> None:
        """Settle every pending publish with ``error`` (the socket is gone)."""
        while self.settle(None, error):
            pass


def await_acks(
    pendings: Sequence[PendingAck], wait: float, channel: str, event: str
) -> List[PublishAck]:
    """Wait for each publish's ack in turn, allowing ``wait`` seconds for each next one.

    :returns: the acks, in order.
    :raises CohrtTimeoutError: an ack did not come within ``wait`` of the one before.
    :raises CohrtConnectionError: the socket dropped, or the channel closed,
        before an ack: that publish may or may not have been applied.
    :raises CohrtError: the first publish the server refused (its error).
    """
    acks = []
    for pending in pendings:
        if not pending.done.wait(wait):
            raise CohrtTimeoutError(f"no ack for publish on {channel!r} within {wait}s")
        if pending.error is not None:
            if isinstance(pending.error, ChannelClosedError):
                # Sent, then the channel closed before the ack: not "nothing sent".
                raise CohrtConnectionError(
                    f"channel {channel!r} closed before the ack: the message may or may not "
                    "have been published; look for it in history before publishing it again"
                ) from pending.error
            raise pending.error
        assert pending.frame is not None
        # The frame's event is the literal "published": the ack describes the
        # message, so its event (and action) are the message's, as over HTTP.
        acks.append(PublishAck.from_wire({**pending.frame, "event": event}, channel, event))
    return acks
