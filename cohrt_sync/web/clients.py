"""The web app's :class:`~cohrt_sync.Client`: made on first use, one per process, web timeouts.

A request handler must answer within its worker's timeout (gunicorn kills a
sync worker after 30 s by default), so the client the routes use gives up
on the API well before: :func:`web_client_options` turns the
``COHRT_TIMEOUT`` setting into the client's ``timeout`` and ``retry``.
:class:`ProcessClient` holds the client: made on the first call, kept by a
forked worker (the client lets its parent's sockets and threads go by
itself, and what was registered on it stays), made again after it closed.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..client import Client
from ..errors import BadRequestError
from ..retry import Retry
from .errors import NotConfiguredError

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "ProcessClient",
    "configured_client",
    "make_web_client",
    "timeout_from_setting",
    "web_client_options",
]

#: Seconds a route waits on the API for one call, by default (``COHRT_TIMEOUT``).
DEFAULT_TIMEOUT = 10.0

#: The longest connect timeout of a route's calls.
CONNECT_TIMEOUT = 3.0

#: The share of the read timeout that retries may spend (Retry's budget).
RETRY_SHARE = 0.7


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError
    return seconds


def timeout_from_setting(value: Any) -> Tuple[float, float]:
    """The ``(connect, read)`` timeouts a ``COHRT_TIMEOUT`` setting asks for.

    :param value: None (the default, 10 s), a number of seconds (the read
        timeout; connect is the smaller of it and 3 s), or a ``(connect,
        read)`` pair. A string of a number (from the environment) is read too.
    :raises ValueError: anything else.
    """
    if value is None or value == "":
        value = DEFAULT_TIMEOUT
    try:
        if isinstance(value, (tuple, list)):
            connect, read = (_seconds(v) for v in value)
        else:
            read = _seconds(value)
            connect = min(CONNECT_TIMEOUT, read)
    except ValueError:
        raise ValueError(
            "COHRT_TIMEOUT must be a positive number of seconds (like 10) or a "
            f"(connect, read) pair (like (3, 10)), not {value!r}"
        ) from None
    return connect, read


def web_client_options(timeout: Tuple[float, float]) -> Dict[str, Any]:
    """The :class:`~cohrt_sync.Client` keywords of a client used in request handlers.

    The read timeout bounds one attempt; retries (of what provably failed
    fast: a refused connection, a 502/503) stop within 70 % of it, so one
    call to the API ends in about the read timeout.

    :param timeout: ``(connect, read)`` seconds.
    """
    connect, read = timeout
    return {
        "timeout": (connect, read),
        "retry": Retry(total=3, backoff_factor=0.25, budget=read * RETRY_SHARE),
    }


def make_web_client(
    key: Optional[str],
    base_url: Optional[str],
    *,
    timeout: Tuple[float, float],
    options: Optional[Mapping[str, Any]] = None,
    where: str,
) -> Client:
    """A client for request handlers: web timeouts unless ``options`` says otherwise.

    Installed plugins stay out unless ``options`` asks (``entry_points=``).

    :param key: the application key; None falls back to ``$COHESIVITY_KEY``.
    :param base_url: the API root; None falls back to the client's default.
    :param timeout: ``(connect, read)`` seconds, from ``COHRT_TIMEOUT``.
    :param options: more :class:`~cohrt_sync.Client` keywords
        (``COHRT_CLIENT_OPTIONS``); its ``timeout`` and ``retry`` win.
    :param where: where the app's settings live, for the message (``the app config``).
    :raises NotConfiguredError: there is no key.
    """
    merged = {**web_client_options(timeout), **dict(options or {})}
    return configured_client(key, base_url, merged, where=where)


def configured_client(
    key: Optional[str], base_url: Optional[str], options: Mapping[str, Any], *, where: str
) -> Client:
    """A :class:`~cohrt_sync.Client` of the app's settings; without a key, an error saying where.

    The routes' client (:func:`make_web_client`) and the app's bot
    (``flask cohrt listen``, ``manage.py cohrt_listen``) are both made here.

    :param key: the application key; None falls back to ``$COHESIVITY_KEY``.
    :param base_url: the API root; None falls back to the client's default.
    :param options: :class:`~cohrt_sync.Client` keywords.
    :param where: where the app's settings live, for the message (``the app config``).
    :raises NotConfiguredError: there is no key.
    :raises BadRequestError: an option is wrong.
    """
    try:
        return Client(key=key, base_url=base_url, **options)
    except BadRequestError as e:
        if "no application key" in str(e):
            raise NotConfiguredError(
                f"realtime is not configured: set COHRT_KEY in {where} or the environment"
            ) from None
        raise


class ProcessClient:
    """A :class:`~cohrt_sync.Client` made on first use, shared by the process's threads.

    A forked worker (``gunicorn --preload``, uWSGI) keeps the client it
    inherited: the client lets its parent's connections go by itself before
    the worker first uses it (docs/lifecycle.md, "Forks"), and the plugins
    registered on it (``client.register(...)`` at start-up) stay registered.
    Once closed, the next :meth:`get` makes a new client and registers on it
    every plugin the closed one had, so nothing registered is dropped.

    :param make: builds the client (it may raise, e.g. :class:`NotConfiguredError`).
    """

    def __init__(self, make: Callable[[], Client]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._client: Optional[Client] = None

    @property
    def current(self) -> Optional[Client]:
        """The client made so far, or None (nothing made yet, or it was closed)."""
        client = self._client
        return client if client is not None and not client.closed else None

    def get(self) -> Client:
        """The client, made now if there is none yet or it was closed.

        :raises pluggy.PluginValidationError: a plugin of the closed client
            no longer registers (never for the plugins a client accepted).
        """
        with self._lock:
            old = self._client
            if old is None or old.closed:
                new = self._make()
                if old is not None:
                    _carry_plugins(old, new)
                self._client = new
            return self._client  # type: ignore[return-value]

    def close(self) -> None:
        """Close the client now (also done at interpreter exit); :meth:`get` makes another."""
        with self._lock:
            client = self._client
        if client is not None:
            client.close()


def _carry_plugins(old: Client, new: Client) -> None:
    """Register on ``new`` what ``old`` had that ``new`` has not (built-ins it made itself)."""
    manager = new.plugin_manager
    for name, plugin in old.plugin_manager.list_name_plugin():
        if plugin is None or manager.has_plugin(name) or manager.is_registered(plugin):
            continue
        new.register(plugin, name=name)
