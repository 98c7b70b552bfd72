"""A flag set once that threads wait for: ``threading.Event``'s is_set, set and wait, on one lock.

A ``threading.Event`` is a Condition, a lock, a deque of waiters and two
instance dicts: about 1.2 KiB, and a ``set()`` or a wake-up from ``wait()``
runs a few microseconds of Python. A channel keeps a few set-once flags for
its whole life (closing, closed) and makes one per publish (its ack), so a
:class:`Latch` is one lock that stays held until the flag is set: about a
tenth of the memory, and setting or waking is one C call
(docs/benchmarks.md, "An idle channel's memory and a message's trip").
"""

from __future__ import annotations

import threading
from typing import Optional, Protocol

__all__ = ["Flag", "Latch", "set_latch"]


class Flag(Protocol):
    """What waits on a set-once signal need of it: a :class:`Latch` or a ``threading.Event``."""

    def is_set(self) -> bool:
        """True once set."""

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until set or ``timeout`` seconds passed; True if set."""


class Latch:
    """A flag that is set once and never cleared, which any thread may wait for.

    The lock is held from the start and released by :meth:`set`; a waiter
    acquires it and releases it again at once, so every later waiter passes
    too. Two racing :meth:`set` calls (or a set racing a waiter's release)
    may release a lock that is free already; that ``RuntimeError`` is
    harmless and ignored, and the lock ends up free either way.
    """

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def __repr__(self) -> str:
        return f"<Latch {'set' if self._flag else 'unset'}>"

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter (idempotent, from any thread)."""
        self._flag = True
        try:
            self._lock.release()
        except RuntimeError:
            pass  # set already

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the flag is set, or ``timeout`` seconds passed.

        :param timeout: seconds (``None``: no limit; 0 or less: do not block),
            as for ``threading.Event.wait``.
        :returns: True if the flag is set.
        """
        if self._flag:
            return True
        if timeout is None:
            got = self._lock.acquire()
        elif timeout > 0:
            got = self._lock.acquire(True, timeout)
        else:
            got = self._lock.acquire(False)
        if got:
            try:
                self._lock.release()
            except RuntimeError:
                pass  # a racing set() released it under us: it stays free
            return True
        return self._flag


def set_latch() -> Latch:
    """A :class:`Latch` that is set already (a forked child's closed channel)."""
    latch = Latch()
    latch.set()
    return latch

