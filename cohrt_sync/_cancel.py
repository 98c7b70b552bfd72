"""Cutting an HTTP request in flight: the read a closing channel must not wait for.

A channel's catch-up reads history on its dispatcher thread, and ``close()``
must be able to end a read that hangs. Sessions made by
:func:`cohrt_sync._http.make_session` mount :class:`TrackingAdapter`, whose
pools remember the connection each thread is using (:func:`cut_request`
shuts its socket down); :func:`cancel_on` binds an event that stops the
thread's retries once set. The connections remembered are this process's
only: after a fork, a thread of the child may get the ident of a parent's
thread, and cutting "its" request would shut down the parent's socket.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any, Dict, Iterator, Optional

import requests.adapters
import urllib3

from ._latch import Flag

__all__ = ["TrackingAdapter", "bound", "cancel_on", "cancelled", "cut_request"]

#: Thread ident -> the urllib3 connection it is using now, in process ``_PID``.
_IN_USE: Dict[int, Any] = {}
_PID = os.getpid()
_CANCEL = threading.local()


def _in_use() -> Dict[int, Any]:
    """This process's map; a forked child starts an empty one."""
    global _IN_USE, _PID
    if _PID != os.getpid():
        _IN_USE, _PID = {}, os.getpid()
    return _IN_USE


def _forget_conn(conn: Any) -> None:
    in_use = _in_use()
    for ident, used in list(in_use.items()):
        if used is conn:
            in_use.pop(ident, None)


def _taken(conn: Any) -> Any:
    """A pool handed ``conn`` to this thread: remember it until it comes back."""
    _in_use()[threading.get_ident()] = conn
    return conn


def _given_back(conn: Any) -> None:
    _in_use().pop(threading.get_ident(), None)
    _forget_conn(conn)


class _TrackedHTTPPool(urllib3.HTTPConnectionPool):
    """urllib3's pool, telling :func:`cut_request` which connection each thread uses."""

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        return _taken(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        _given_back(conn)
        super()._put_conn(conn)


class _TrackedHTTPSPool(urllib3.HTTPSConnectionPool):
    """The same for HTTPS (urllib3 keeps the two pools apart)."""

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        return _taken(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        _given_back(conn)
        super()._put_conn(conn)


class TrackingAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` whose pools remember the connection each thread uses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _TrackedHTTPPool,
            "https": _TrackedHTTPSPool,
        }


@contextlib.contextmanager
def cancel_on(event: Flag) -> Iterator[None]:
    """While inside, requests of this thread stop retrying once ``event`` is set.

    :param event: the cancel signal (a channel's closing event).
    """
    previous = getattr(_CANCEL, "event", None)
    _CANCEL.event = event
    try:
        yield
    finally:
        _CANCEL.event = previous


def cut_request(thread: threading.Thread) -> None:
    """Shut down the socket of the request ``thread`` is waiting on, if any.

    Only sessions made by :func:`make_session` are tracked.

    :param thread: the thread whose read should end now.
    """
    conn = _in_use().get(thread.ident or -1)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def bound() -> bool:
    """True while this thread has a cancel event bound (see :func:`cancel_on`)."""
    return getattr(_CANCEL, "event", None) is not None


def cancelled() -> bool:
    """True when this thread's bound cancel event is set."""
    event: Optional[Flag] = getattr(_CANCEL, "event", None)
    return event is not None and event.is_set()
