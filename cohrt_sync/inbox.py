"""The hand-off from a channel's reader thread to its dispatcher thread.

An :class:`Inbox` is a deque the reader appends to and the dispatcher pops
from (deque operations are atomic), plus the dispatcher's loop. The
dispatcher is woken only when it sleeps: waking a thread costs far more than
a hook call.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Tuple

__all__ = ["STOP", "Inbox"]

#: Put last by ``close()``: the dispatcher loop ends when it reaches it.
STOP: Tuple[Any, ...] = ("stop",)


class Inbox:
    """Items for a dispatcher, in arrival order."""

    __slots__ = ("_in_bytes", "_items", "_out_bytes", "_sleeping", "_wake")

    def __init__(self) -> None:
        self._items: Deque[Tuple[Any, ...]] = collections.deque()
        self._wake = threading.Event()
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

    def put_frame(self, frame: Any, size: int) -> None:
        """Append a decoded frame of ``size`` bytes (reader thread only).

        :param frame: the decoded frame.
        :param size: its size on the wire, counted against the byte bound.
        """
        self._in_bytes += size
        self._items.append(("frame", frame, size))
        if self._sleeping:
            self._wake.set()

    def put(self, item: Tuple[Any, ...]) -> None:
        """Append ``item``, waking the dispatcher if it sleeps.

        :param item: ``(kind, *args)``.
        """
        self._items.append(item)
        if self._sleeping:
            self._wake.set()

    def run(
        self,
        handle: Callable[[Tuple[Any, ...]], None],
        closing: threading.Event,
        linger: float,
    ) -> None:
        """Hand items to ``handle`` one at a time until :data:`STOP` or ``closing``.

        After a burst (more than one item per wake-up) the loop lingers for
        ``linger`` seconds to collect the next batch instead of being woken
        for every item. A lone item still wakes it at once, so latency at low
        rates is unaffected.

        :param handle: called with each item; it must not raise.
        :param closing: set when the channel closes.
        :param linger: seconds to wait after a burst (0: never).
        """
        items = self._items
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
                self._wake.clear()
                self._sleeping = True
                # Re-check after announcing sleep: the reader appends, then looks.
                if not items:
                    self._wake.wait()
                self._sleeping = False
                continue
            if item is STOP:
                break
            if item[0] == "frame":
                self._out_bytes += item[2]
            batch += 1
            handle(item)
