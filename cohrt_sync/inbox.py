"""The hand-off from a channel's reader thread to its dispatcher thread.

An :class:`Inbox` is a deque the reader appends to and the dispatcher pops
from (deque operations are atomic), plus the dispatcher's loop. The
dispatcher is woken only when it sleeps: waking a thread costs far more than
a hook call. A frame is queued as its decoded dict, with no wrapper, and its
size in a second deque: a burst can queue thousands of frames, and every
object allocated per frame adds to the garbage collector's work.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Dict, Tuple

from ._latch import Flag

__all__ = ["STOP", "Inbox"]

#: Put last by ``close()``: the dispatcher loop ends when it reaches it.
STOP: Tuple[Any, ...] = ("stop",)


class Inbox:
    """Items for a dispatcher, in arrival order."""

    __slots__ = ("_in_bytes", "_items", "_out_bytes", "_sizes", "_sleeping", "_wake")

    def __init__(self) -> None:
        #: Frames (dicts) and events (tuples), in arrival order.
        self._items: Deque[Any] = collections.deque()
        #: The size of each frame in ``_items``, in the same order.
        self._sizes: Deque[int] = collections.deque()
        #: Held while nobody has asked the dispatcher to wake; released to wake it.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._sleeping = False
        # Two counters, each written by one thread only (the reader adds, the
        # dispatcher takes away): no lock, and no lost update.
        self._in_bytes = 0
        self._out_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def backlog_bytes(self) -> int:
        """Bytes of the frames waiting (as received, before decoding)."""
        return self._in_bytes - self._out_bytes

    def put_frame(self, frame: Dict[str, Any], size: int) -> None:
        """Append a decoded frame of ``size`` bytes (reader thread only).

        :param frame: the decoded frame (a JSON object).
        :param size: its size on the wire, counted against the byte bound.
        """
        self._in_bytes += size
        # The size first: the dispatcher takes it once it sees the frame.
        self._sizes.append(size)
        self._items.append(frame)
        if self._sleeping:
            self._rouse()

    def offer(self, frame: Dict[str, Any], size: int, max_items: int, max_bytes: int) -> bool:
        """Append a frame as :meth:`put_frame` does, unless the backlog is at its bounds.

        One call a frame on the reader's hot path, where checking the length
        and the bytes and then appending would be three.

        :param frame: the decoded frame (a JSON object).
        :param size: its size on the wire.
        :param max_items: frames the backlog may hold (``queue_size``).
        :param max_bytes: bytes the backlog may hold (``queue_bytes``); a
            frame larger than this still goes into an empty backlog.
        :returns: False, and nothing appended, when the frame would pass a bound.
        """
        items = self._items
        held = len(items)
        if held >= max_items or (held and self._in_bytes - self._out_bytes + size > max_bytes):
            return False
        self._in_bytes += size
        self._sizes.append(size)
        items.append(frame)
        if self._sleeping:
            self._rouse()
        return True

    def put(self, item: Tuple[Any, ...]) -> None:
        """Append ``item``, waking the dispatcher if it sleeps.

        :param item: ``(kind, *args)``; frames go through :meth:`put_frame`.
        """
        self._items.append(item)
        if self._sleeping:
            self._rouse()

    def _rouse(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:
            # Released already (two wakers, or a wake the dispatcher did not
            # need): it then finds the lock free once and looks again.
            pass

    def run(
        self,
        handle: Callable[[Any], None],
        closing: Flag,
        linger: float,
    ) -> None:
        """Hand items to ``handle`` one at a time until :data:`STOP` or ``closing``.

        After a burst (more than one item per wake-up) the loop lingers for
        ``linger`` seconds to collect the next batch instead of being woken
        for every item. A lone item still wakes it at once, so latency at low
        rates is unaffected.

        :param handle: called with each item (a frame's dict, or an event's
            tuple); it must not raise.
        :param closing: set when the channel closes.
        :param linger: seconds to wait after a burst (0: never).
        """
        items = self._items
        sizes = self._sizes
        pop = items.popleft
        is_closing = closing.is_set
        batch = 0
        while not is_closing():
            try:
                item = pop()
            except IndexError:
                if batch > 1 and linger > 0:
                    batch = 0
                    time.sleep(linger)
                    continue
                batch = 0
                self._sleeping = True
                # Re-check after announcing sleep: the reader appends, then looks.
                if not items:
                    self._wake.acquire()
                self._sleeping = False
                continue
            if item is STOP:
                break
            if type(item) is dict:
                self._out_bytes += sizes.popleft()
            batch += 1
            handle(item)
