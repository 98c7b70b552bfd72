"""Outbound WebSocket memory, bounded in bytes per socket and in total.

A socket whose peer reads slower than the channel publishes builds up a queue
of unsent frames. Two limits bound that memory:

* ``socket_queue_bytes``: one socket's queue. Past it (with more than one
  frame queued) the socket is dropped.
* ``total_queue_bytes``: the frames queued on all sockets together. Past it
  the sockets with the largest queues are dropped until the total is back
  under the limit.

A broadcast frame is one string shared by every subscriber's queue, so the
total counts each frame once however many queues hold it (an
:class:`OutFrame` counts its holders), while each socket's own figure counts
everything in its queue. A dropped socket's frames are released at once; the
peer is sent close code :data:`SLOW_CLOSE_CODE` with a reason, and its TCP
connection is aborted if it does not take that within
:data:`CLOSE_DEADLINE_S`. Clients reconnect and catch up from history.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Callable, Protocol, Set

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("cohrt_sync.server")

#: "Try Again Later": the server could not keep this socket's backlog.
SLOW_CLOSE_CODE = 1013
#: How long a dropped socket's close frame may take before the TCP abort.
CLOSE_DEADLINE_S = 1.0
#: Bytes an OutFrame and its queue slot cost besides the text itself.
FRAME_OVERHEAD = 64


class OutFrame:
    """One frame's text, its memory size, and how many socket queues hold it."""

    __slots__ = ("holders", "size", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = sys.getsizeof(text) + FRAME_OVERHEAD
        self.holders = 0


class QueueOwner(Protocol):
    """What :class:`Budget` needs of a socket (``hub.Conn`` has it)."""

    queued_bytes: int
    channel: str

    def drop_slow(self, reason: str) -> None:
        """Release the queue and close the socket with :data:`SLOW_CLOSE_CODE`."""


class Budget:
    """The byte limits shared by all sockets of one server.

    :param socket_queue_bytes: most bytes queued for one socket.
    :param total_queue_bytes: most bytes queued for all sockets together.
    """

    def __init__(self, socket_queue_bytes: int, total_queue_bytes: int) -> None:
        if socket_queue_bytes <= 0 or total_queue_bytes <= 0:
            raise ValueError("socket_queue_bytes and total_queue_bytes must be positive")
        self.socket_limit = socket_queue_bytes
        self.total_limit = total_queue_bytes
        #: Bytes of distinct frames queued anywhere now.
        self.total = 0
        #: Sockets with something queued.
        self.backlogged: Set[QueueOwner] = set()
        #: Sockets dropped for being too slow, since start.
        self.dropped = 0

    def held(self, owner: QueueOwner, frame: OutFrame) -> None:
        """``owner`` queued ``frame``; drop whatever the limits require."""
        frame.holders += 1
        if frame.holders == 1:
            self.total += frame.size
        owner.queued_bytes += frame.size
        self.backlogged.add(owner)
        # A lone frame larger than the limit still goes out: only a socket
        # that is behind is dropped.
        if owner.queued_bytes > self.socket_limit and owner.queued_bytes > frame.size:
            self._drop(
                owner,
                f"too slow: {owner.queued_bytes} bytes unsent (socket_queue_bytes"
                f" {self.socket_limit})",
            )
        if self.total > self.total_limit:
            self._shed()

    def released(self, owner: QueueOwner, frame: OutFrame) -> None:
        """``owner`` sent or discarded ``frame``."""
        frame.holders -= 1
        if frame.holders == 0:
            self.total -= frame.size
        owner.queued_bytes -= frame.size
        if owner.queued_bytes <= 0:
            owner.queued_bytes = 0
            self.backlogged.discard(owner)

    def _shed(self) -> None:
        # Largest backlogs first; a frame shared with another slow socket is
        # freed only when its last holder goes, so keep going until under.
        for owner in sorted(self.backlogged, key=lambda o: o.queued_bytes, reverse=True):
            if self.total <= self.total_limit:
                return
            self._drop(
                owner,
                f"too slow: {owner.queued_bytes} bytes unsent while the server holds"
                f" {self.total} (total_queue_bytes {self.total_limit})",
            )

    def _drop(self, owner: QueueOwner, reason: str) -> None:
        self.dropped += 1
        log.warning("dropping a socket on channel %r: %s", owner.channel, reason)
        owner.drop_slow(reason)


async def close_or_abort(
    ws: web.WebSocketResponse,
    code: int,
    reason: str,
    abort: Callable[[], None],
    deadline: float = CLOSE_DEADLINE_S,
) -> None:
    """Send a close frame; abort the connection ``deadline`` seconds later regardless.

    The abort is unconditional: a close handshake that fails, or whose frame
    is stuck behind data the peer never reads, leaves aiohttp flushing a
    transport that never drains. Aborting a connection that already closed
    does nothing.
    """
    timer = asyncio.get_running_loop().call_later(deadline, abort)
    try:
        # A close reason is at most 123 bytes.
        message = reason.encode("utf-8")[:123]
        await asyncio.wait_for(ws.close(code=code, message=message), deadline)
    except (asyncio.TimeoutError, ConnectionError, RuntimeError):
        timer.cancel()
        abort()
