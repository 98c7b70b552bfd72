"""The hand-off from a channel's reader thread to its dispatcher thread.

An :class:`Inbox` is a deque the reader appends to and the dispatcher pops
from (deque operations are atomic), plus the dispatcher's loop. The
dispatcher is woken only when it sleeps: waking a thread costs far more than
a hook call. It sleeps on a bare lock, which the waker releases: one C call
on each side, where a ``threading.Event`` runs its Condition's Python while
the other thread waits for the interpreter lock. A frame is queued as its
decoded dict, with no wrapper, and its size in a second deque: a burst can
queue thousands of frames, and every object allocated per frame adds to the
garbage collector's work.

A dispatcher with nothing to do for ``idle`` seconds parks: its loop returns
and its thread ends, so a quiet channel keeps one thread (the reader) rather
than two. The next item put starts a new dispatcher thread (the ``resume``
callback it parked with). Parking and resuming are decided under one lock,
each after looking at the deque, so an item is never left without a
dispatcher.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from ._latch import Flag

__all__ = ["STOP", "Inbox"]

#: Put last by ``close()``: the dispatcher loop ends when it reaches it.
STOP: Tuple[Any, ...] = ("stop",)


class Inbox:
    """Items for a dispatcher, in arrival order."""

    __slots__ = (
        "_in_bytes",
        "_items",
        "_out_bytes",
        "_park_lock",
        "_parked",
        "_resume",
        "_sizes",
        "_sleeping",
        "_wake",
    )

    def __init__(self) -> None:
        #: Frames (dicts) and events (tuples), in arrival order.
        self._items: Deque[Any] = collections.deque()
        #: The size of each frame in ``_items``, in the same order.
        self._sizes: Deque[int] = collections.deque()
        #: Held while nobody has asked the dispatcher to wake; released to wake it.
        self._wake = threading.Lock()
        self._wake.acquire()
        #: True while the dispatcher waits for an item (or has parked): a put
        #: must then wake it (or resume it).
        self._sleeping = False
        #: Guards parking and resuming, so they never cross.
        self._park_lock = threading.Lock()
        #: Starts a new dispatcher thread while ``_parked``.
        self._resume: Optional[Callable[[], bool]] = None
        self._parked = False
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

    @property
    def parked(self) -> bool:
        """True while no dispatcher thread runs: it parked, and nothing came since."""
        return self._parked

    def keep_parked(self) -> bool:
        """If parked, stay parked for good: no later put starts a dispatcher.

        For a closing channel whose dispatcher could not be started again
        (Python 3.12 refuses new threads at interpreter exit, where the
        ``atexit`` handler closes forgotten clients): the caller then runs
        what that thread would have run, and no thread started later may run
        it a second time.

        :returns: True if it was parked (and now stays so).
        """
        with self._park_lock:
            if self._parked:
                self._resume = None
                return True
            return False

    def _rouse(self) -> None:
        # Under the park lock: a dispatcher that is parking decides under it
        # too, after looking at the items, so it either sees the item just
        # put (and stays) or has parked already (and is resumed here).
        with self._park_lock:
            if self._parked:
                # Cleared before the new thread runs, which sets it again
                # itself when it sleeps: the new thread looks at the items
                # before it ever sleeps, so puts need not wake it until then.
                self._sleeping = False
                resume = self._resume
                if resume is not None and resume():
                    self._parked = False
                    self._resume = None
                else:
                    self._sleeping = True  # still parked: the next put tries again
                return
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
        idle: Optional[float] = None,
        resume: Optional[Callable[[], bool]] = None,
        parked: Optional[Callable[[], None]] = None,
    ) -> bool:
        """Hand items to ``handle`` one at a time until :data:`STOP`, ``closing``, or idle.

        After a burst (more than one item per wake-up) the loop lingers for
        ``linger`` seconds to collect the next batch instead of being woken
        for every item. A lone item still wakes it at once, so latency at low
        rates is unaffected.

        :param handle: called with each item (a frame's dict, or an event's
            tuple); it must not raise.
        :param closing: set when the channel closes.
        :param linger: seconds to wait after a burst (0: never).
        :param idle: seconds with nothing to do after which the loop parks
            (``None``: never). Only with ``resume``.
        :param resume: called (under the inbox's lock, by whichever thread
            puts the next item) to start a new dispatcher thread once this one
            parked; True if it did. Until one starts, items wait, and every
            later put tries again.
        :param parked: called under the same lock as the loop parks, before
            any resume can run.
        :returns: True if the loop parked, False if it stopped (``STOP`` or ``closing``).
        """
        if resume is None:
            idle = None
        items = self._items
        sizes = self._sizes
        pop = items.popleft
        is_closing = closing.is_set
        batch = 0
        while not is_closing():
            # A look before the pop, not a pop that raises once the deque is
            # empty: the exception (and its traceback) would be built just
            # before the thread sleeps, which is when a hook it woke waits for
            # the interpreter lock. Only this thread pops.
            if items:
                item = pop()
            else:
                if batch > 1 and linger > 0:
                    batch = 0
                    time.sleep(linger)
                    continue
                batch = 0
                self._sleeping = True
                # Re-check after announcing sleep: the reader appends, then looks.
                if not items:
                    if idle is None:
                        self._wake.acquire()
                    elif not self._wake.acquire(True, idle) and self._park(resume, parked):
                        return True
                self._sleeping = False
                continue
            if item is STOP:
                break
            if type(item) is dict:
                self._out_bytes += sizes.popleft()
            batch += 1
            handle(item)
        return False

    def _park(
        self, resume: Optional[Callable[[], bool]], parked: Optional[Callable[[], None]]
    ) -> bool:
        """Park unless an item came meanwhile (the dispatcher, after ``idle`` seconds)."""
        with self._park_lock:
            if self._items:
                return False
            self._resume = resume
            self._parked = True
            if parked is not None:
                parked()
            return True
