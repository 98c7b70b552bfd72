"""After a fork: an object made in another process lets that process's parts go before use.

A forked child gets a copy of every client, channel and HTTP transport of
its parent, but none of their threads, and it shares their sockets: a
close frame or a ``shutdown()`` from the child would end the parent's
connection, a request on a pooled connection would interleave with the
parent's, and a lock a parent's thread held at the fork stays held forever.
So each such object remembers the process it belongs to (``_pid``), and
:func:`follow` has it let go of its parent's parts (``_follow_fork``)
before the child first uses it: from the at-fork hook where ``os.fork()``
ran it (gunicorn, multiprocessing), else on first use (uWSGI forks its
workers from C, where no at-fork hook runs).
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

__all__ = ["ProcessBound", "follow", "new_event"]


class ProcessBound(Protocol):
    """An object made in one process, which a forked child must not use as it is."""

    #: The id of the process whose parts (sockets, threads, locks) it holds.
    _pid: int

    def _follow_fork(self) -> None:
        """In a forked child: let the parent's parts go; this process's from now on."""
        ...


#: Taken only to follow a fork, so no thread of a parent holds it when it
#: forks (unless the parent was itself following one). Reentrant: a client
#: follows its channels and its transport under it.
_lock = threading.RLock()


def _fresh_lock() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock)


def follow(obj: ProcessBound) -> None:
    """Make ``obj`` this process's: after a fork, it lets the parent's parts go first.

    Cheap when nothing forked (one ``getpid()``); done once per child.

    :param obj: a client, channel or HTTP transport.
    """
    pid = os.getpid()
    if obj._pid == pid:
        return
    with _lock:
        if obj._pid != pid:
            obj._follow_fork()
            obj._pid = pid


def new_event(is_set: bool) -> threading.Event:
    """A new event, set or not: a fork's copy of an event may hold a lock nobody will release.

    :param is_set: whether it starts set (the state of the event it replaces).
    """
    event = threading.Event()
    if is_set:
        event.set()
    return event
