"""The :class:`Client`: configuration, plugins, the HTTP calls, channels and lifecycle.

The client assembles the parts and keeps the registry of open channels. Its
HTTP calls (publish, history, sql, tokens, provisioning) are made by its
:class:`~cohrt_sync.http_api.HttpApi`; each :class:`~cohrt_sync.Channel` it
builds is given a :class:`~cohrt_sync.settings.ChannelSettings`, that
``HttpApi`` as its port, and a callback to say it closed; the client's
keepalive thread pings them all. A forked child's copy of a client lets its
parent's channels and connections go before it is used (:mod:`cohrt_sync._fork`).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import attrs
import pluggy

from . import _fork, scrollback
from ._http import HttpTransport, make_session
from ._signals import SignalReceived, raise_on_signals
from .channel import Channel, close_channels
from .dm import dm_request
from .errors import BadRequestError, ChannelClosedError, CohrtError
from .hookcalls import call_hook
from .http_api import HttpApi
from .models import (
    Message,
    PublishAck,
    Token,
    check_channel,
    check_name,
    check_ttl,
    check_user_id,
)
from .plugins import EntryPointSelection, make_plugin_manager
from .realtimekit import RealtimeKit
from .retry import DEFAULT_RETRY, RECONNECT_BACKOFF, Retry
from .settings import MAX_DISPATCH_IDLE, ChannelSettings

__all__ = ["DEFAULT_BASE_URL", "Client"]

log = logging.getLogger("cohrt_sync.client")

#: Used when neither ``base_url=`` nor ``$COHESIVITY_BASE_URL`` is given.
DEFAULT_BASE_URL = "https://cohesivity.ai"

_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_forgotten_clients() -> None:
    # Channel threads are daemons so an un-closed client cannot block exit;
    # closing here still says goodbye to the server and joins the threads.
    # In a forked child, close() first lets the parent's channels go untouched.
    for client in list(_live_clients):
        try:
            client.close(timeout=2.0)
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _follow_into_child() -> None:
    # os.fork()'s at-fork hook, in the child: every client lets its parent's
    # parts go now, before any of the child's code runs. A fork from C (uWSGI)
    # runs no hook: each client then does it when first used.
    for client in list(_live_clients):
        try:
            _fork.follow(client)
        except Exception:  # pragma: no cover - never let a fork fail over it
            log.exception("could not let a client's parent process's parts go")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_follow_into_child)


def _log_hook_failure(where: str, error: BaseException) -> None:
    log.error("hook %s raised after an HTTP publish", where, exc_info=error)


def _default_key(value: Optional[str]) -> Optional[str]:
    return value if value is not None else os.environ.get("COHESIVITY_KEY")


def _default_base_url(value: Optional[str]) -> str:
    url = value or os.environ.get("COHESIVITY_BASE_URL") or DEFAULT_BASE_URL
    return url.rstrip("/")


@attrs.define(eq=False, repr=False)
class Client:
    """A synchronous client for the Cohesivity Realtime edge API.

    Safe to share between threads. Use it as a context manager, or call
    :meth:`close` when done.

    :param key: the application key (default ``$COHESIVITY_KEY``). Never shown
        in a repr, exception or log line.
    :param base_url: API root (default ``$COHESIVITY_BASE_URL`` or
        ``https://cohesivity.ai``); a local server's URL works the same.
    :param plugins: plugin objects to register.
    :param entry_points: installed plugins (the ``cohrt_sync`` entry-point
        group) to load: ``True`` all, a list of names those (an unknown name
        raises :class:`BadRequestError`), ``False`` (default) none.
    :param timeout: HTTP ``(connect, read)`` timeouts in seconds.
    :param retry: HTTP retry policy.
    :param reconnect_backoff: channel reconnect policy (``total=None``: forever;
        a channel whose ``total`` attempts all fail, or whose reconnect finds
        the tenant paused or not provisioned, reports it to ``on_error`` and
        closes).
    :param connect_timeout: seconds for the whole socket handshake: TCP connect,
        upgrade and ``subscribed`` (a watchdog cuts a reply trickled past it).
    :param ack_timeout: default seconds :meth:`Channel.publish` waits for its ack.
    :param ping_interval: seconds of silence before the client pings a socket.
    :param ping_timeout: seconds without a pong before a socket counts as dead.
    :param queue_size: frames a channel buffers for its dispatcher (overflow
        policy: see :mod:`cohrt_sync.channel`).
    :param queue_bytes: bytes of frames a channel buffers for its dispatcher
        (the same overflow policy, whichever bound is reached first).
    :param max_message_size: largest socket message accepted, in bytes; a
        larger one is refused as its frame header arrives and the socket is
        cut (the catch-up then reads a persisted one from history).
    :param max_response_size: largest HTTP answer accepted, in bytes once
        decoded (a history page, a SQL result); a larger one raises
        :class:`ProtocolError` and is read no further.
    :param dispatch_linger: seconds a busy dispatcher waits to batch frames
        (0 wakes it for every frame).
    :param dispatch_idle: seconds a channel's dispatcher thread waits with
        nothing to do before it ends; the next frame starts a new one (under
        the same name), so a quiet channel keeps one thread instead of two.
        ``None`` keeps it for the channel's life, for hooks that keep state
        per thread.
    :param session: a ``requests.Session`` to use instead of a new one.
    """

    key: Optional[str] = attrs.field(default=None, converter=_default_key)
    base_url: str = attrs.field(default=None, converter=_default_base_url)
    plugins: Sequence[object] = ()
    entry_points: EntryPointSelection = False
    timeout: Tuple[float, float] = (5.0, 30.0)
    retry: Retry = DEFAULT_RETRY
    reconnect_backoff: Retry = RECONNECT_BACKOFF
    connect_timeout: float = 10.0
    ack_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    queue_size: int = 10_000
    queue_bytes: int = 64 * 2**20
    max_message_size: int = 16 * 2**20
    max_response_size: int = 64 * 2**20
    dispatch_linger: float = 0.001
    dispatch_idle: Optional[float] = 5.0
    session: Any = None

    _http: HttpTransport = attrs.field(init=False)
    _api: HttpApi = attrs.field(init=False)
    #: What every channel of this client is told (one value, shared by all).
    _channel_settings: ChannelSettings = attrs.field(init=False)
    _pm: pluggy.PluginManager = attrs.field(init=False)
    _channels: Dict[int, Channel] = attrs.field(factory=dict, init=False)
    # Channels inside subscribe(), not open yet: close() must be able to cut them.
    _opening: Dict[int, Channel] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _closed: threading.Event = attrs.field(factory=threading.Event, init=False)
    _keepalive: Optional[threading.Thread] = attrs.field(default=None, init=False)
    _realtimekit: Optional[RealtimeKit] = attrs.field(default=None, init=False)
    #: The process whose channels and connections these are (see cohrt_sync._fork).
    _pid: int = attrs.field(factory=os.getpid, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.key:
            raise BadRequestError(
                "no application key: pass key= or set the COHESIVITY_KEY environment variable"
            )
        if self.queue_size < 2:
            raise BadRequestError("queue_size must be at least 2")
        idle = self.dispatch_idle
        if idle is not None and (
            isinstance(idle, bool) or not isinstance(idle, (int, float))
            or not 0 < idle <= MAX_DISPATCH_IDLE
        ):
            raise BadRequestError(
                f"dispatch_idle must be None or a number of seconds from 0 to {MAX_DISPATCH_IDLE}"
            )
        for setting in ("queue_bytes", "max_message_size", "max_response_size"):
            if getattr(self, setting) < 1:
                raise BadRequestError(f"{setting} must be a positive byte count")
        self._http = HttpTransport(
            self.base_url,
            self.key,
            timeout=self.timeout,
            retry=self.retry,
            session=self.session if self.session is not None else make_session(),
            max_response_size=self.max_response_size,
        )
        self._api = HttpApi(self._http, self._published)
        self._channel_settings = ChannelSettings(
            connect_timeout=self.connect_timeout,
            ack_timeout=self.ack_timeout,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            queue_size=self.queue_size,
            queue_bytes=self.queue_bytes,
            max_message_size=self.max_message_size,
            dispatch_linger=self.dispatch_linger,
            dispatch_idle=self.dispatch_idle,
            reconnect_backoff=self.reconnect_backoff,
        )
        self._pm = make_plugin_manager(self.plugins, entry_points=self.entry_points)
        _live_clients.add(self)

    def _follow_fork(self) -> None:
        # A forked child: the parent's channels are closed in this copy (each
        # lets its socket go untouched), the keepalive thread and the locks
        # are the parent's; the HTTP side gets its own pools. Plugins stay.
        inherited = [*self._channels.values(), *self._opening.values()]
        self._lock = threading.Lock()
        self._closed = _fork.new_event(self._closed.is_set())
        self._channels, self._opening, self._keepalive = {}, {}, None
        for ch in inherited:
            _fork.follow(ch)
        _fork.follow(self._http)

    def __repr__(self) -> str:
        _fork.follow(self)
        state = "closed" if self.closed else f"{len(self._channels)} channel(s)"
        return f"<cohrt_sync.Client {self.base_url} {state}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP calls ---------------------------------------------------------------

    def mint_token(
        self, user_id: Union[str, int], name: Optional[str] = None, ttl: int = 300
    ) -> Token:
        """Mint a WebSocket connection token (``POST /edge/realtime/token``).

        :param user_id: the user's id; an ``int`` is sent as a string.
        :param name: display name shown in presence.
        :param ttl: token lifetime in seconds, 60 to 3600.
        :raises BadRequestError: for invalid arguments (before any request).
        """
        return self._api.mint_token(user_id, name, ttl)

    def publish(
        self,
        channel: str,
        data: Any,
        event: str = "message",
        persist: bool = True,
        *,
        idempotency_key: Optional[str] = None,
    ) -> PublishAck:
        """Publish over HTTP (``POST /edge/realtime``) without a socket.

        Retries: only failures that provably were not applied (connection
        refused, connect timeout, 429), so a publish is never stored twice.
        With ``idempotency_key`` it is sent as the ``Idempotency-Key``
        header, and where the server says it deduplicates the key (its
        answers carry ``Idempotent-Publish``, as the local server's do) every
        retryable failure (timeouts, dropped connections, 502/503/504) is
        retried too. Elsewhere (the hosted API documents no key) a failure
        after which it may have been applied is raised, saying it may or may
        not have been published (docs/client.md, "HTTP layer").

        :param channel: the channel name.
        :param data: the JSON payload.
        :param event: the event type.
        :param persist: store in history.
        :param idempotency_key: a stable key for this logical message.
        :raises BadRequestError: invalid arguments (before any request) or refused.
        """
        return self._api.publish(
            channel, data, event, persist, idempotency_key=idempotency_key
        )

    def history(self, channel: str, after: int = 0, limit: int = 50) -> List[Message]:
        """One page: at most ``limit`` (default 50) persisted messages past ``after``, oldest first.

        For every message, use :meth:`iter_history`, which pages for you.

        :param channel: the channel name.
        :param after: id cursor (exclusive); 0 for the beginning.
        :param limit: page size, 1 to 100 (the API's default is 50).
        """
        return self._api.history(channel, after, limit)

    def iter_history(self, channel: str, after: int = 0, page_size: int = 100) -> Iterator[Message]:
        """Every persisted message with ``id > after``, fetched page by page, lazily.

        :param channel: the channel name.
        :param after: id cursor (exclusive).
        :param page_size: messages per request, 1 to 100.
        """
        return self._api.iter_history(channel, after, page_size)

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Run SQL on the tenant database (``POST /edge/database``); return the rows.

        Not retried once sent: a write must not run twice.

        :param query: the SQL text with ``?`` placeholders.
        :param params: placeholder values.
        """
        return self._api.sql(query, params)

    def provision(self, write_region: Optional[str] = None) -> Dict[str, Any]:
        """Provision the realtime resource (``POST /api/resources/realtime``).

        :param write_region: D1 region or alias (``us``, ``eu``, ``apac`` …).
        :returns: the server's JSON response.
        """
        return self._api.provision(write_region)

    def deprovision(self) -> Dict[str, Any]:
        """Delete the realtime resource (``DELETE /api/resources/realtime``).

        :returns: the server's JSON response.
        """
        return self._api.deprovision()

    def send_dm_request(
        self, from_user: Union[str, int], to_user: Union[str, int], **extra: Any
    ) -> PublishAck:
        """Publish a ``dm_request`` to ``user:<to_user>``; see :func:`cohrt_sync.send_dm_request`.

        :param from_user: the requesting user id.
        :param to_user: the recipient user id.
        :param extra: more JSON fields for the notification data.
        """
        channel, data = dm_request(from_user, to_user, extra)
        return self._api.publish(channel, data, event="dm_request")

    def _published(self, ack: PublishAck, seconds: float) -> None:
        """Fire ``on_published`` (``channel=None``) for an HTTP publish; failures are logged."""
        fields = {"channel": None, "ack": ack, "seconds": seconds}
        call_hook(self._pm, "on_published", fields, _log_hook_failure)

    # -- the keepalive thread ---------------------------------------------------

    @property
    def tick(self) -> float:
        """How often the keepalive thread checks the channels' pings."""
        return max(0.02, min(1.0, self.ping_interval / 4, self.ping_timeout / 4))

    def _keepalive_main(self) -> None:
        while not self._closed.wait(self.tick):
            with self._lock:
                channels = list(self._channels.values())
                if not channels:
                    # No idle thread without channels; subscribe() starts a new one.
                    self._keepalive = None
                    return
            now = time.monotonic()
            for ch in channels:
                try:
                    ch.keepalive_tick(now)
                except Exception:  # pragma: no cover - defensive
                    log.exception("keepalive of %s failed", ch.name)

    def _start_keepalive_locked(self) -> None:
        if self._keepalive is None:
            self._keepalive = threading.Thread(
                target=self._keepalive_main,
                name=f"cohrt-sync-keepalive-{id(self) & 0xFFFF:04x}",
                daemon=True,
            )
            self._keepalive.start()

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy ``PluginManager`` of this client."""
        return self._pm

    @property
    def hook(self) -> Any:
        """Shortcut to ``plugin_manager.hook`` (to call hooks yourself)."""
        return self._pm.hook

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    @property
    def channels(self) -> List[Channel]:
        """The open channels."""
        _fork.follow(self)
        with self._lock:
            return list(self._channels.values())

    @property
    def realtimekit(self) -> RealtimeKit:
        """Video/voice meetings via ``/edge/realtimekit``, over this client's HTTP layer."""
        # Built on first use: most clients never touch meetings.
        if self._realtimekit is None:
            self._realtimekit = RealtimeKit(self._http)
        return self._realtimekit

    def newest(self, channel: str, n: int = 50) -> List[Message]:
        """The newest ``n`` persisted messages of ``channel``, oldest first (scrollback).

        One direct-SQL request where SQL is allowed, its answer checked; the
        history walk (a request per 100 messages) where SQL is refused or
        answers in the wrong shape. Ids count across the whole tenant, not
        per channel. See :func:`cohrt_sync.scrollback.newest`.

        :param channel: the channel name.
        :param n: how many, 1 to 1000.
        :raises BadRequestError: a bad argument, before any request.
        """
        return scrollback.newest(self, channel, n)

    # -- plugins ----------------------------------------------------------------

    def register(self, plugin: object, name: Optional[str] = None) -> Optional[str]:
        """Register a plugin object (or module) with hook implementations.

        :param plugin: an object whose methods carry :data:`cohrt_sync.hookimpl`.
        :param name: a name for it (default: pluggy's).
        :returns: the registered name, or ``None`` if the name is blocked.
        :raises pluggy.PluginValidationError: a hook name or argument is unknown.
        """
        registered = self._pm.register(plugin, name=name)
        try:
            self._pm.check_pending()
        except Exception:
            self._pm.unregister(plugin)
            raise
        return registered

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered earlier.

        :param plugin: the plugin object.
        """
        self._pm.unregister(plugin)

    # -- channels -------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        user_id: Union[str, int],
        name: Optional[str] = None,
        ttl: int = 300,
        *,
        catch_up: bool = True,
    ) -> Channel:
        """Open a socket on ``channel`` and return once ``subscribed`` arrived.

        The channel then reads in its own threads, calls hooks in order, and
        reconnects with catch-up after any drop, until closed.

        :param channel: the channel name.
        :param user_id: the user to connect as (``int`` becomes ``str``).
        :param name: display name in presence.
        :param ttl: lifetime of each connection token (60 to 3600 s).
        :param catch_up: after a reconnect, deliver messages missed meanwhile.
        :raises AuthError: token refused; :raises NotProvisionedError: realtime is off;
        :raises CohrtTimeoutError: no ``subscribed`` in ``connect_timeout``.
        """
        check_channel(channel)
        uid = check_user_id(user_id)
        check_ttl(ttl)
        check_name(name)
        _fork.follow(self)
        ch = Channel(
            channel, uid, name, ttl, catch_up,
            settings=self._channel_settings,
            port=self._api,
            plugin_manager=self._pm,
            client=self,
            on_closed=self._forget,
        )
        with self._lock:
            if self._closed.is_set():
                raise ChannelClosedError("client is closed")
            self._opening[id(ch)] = ch
        try:
            ch._open()
        except CohrtError as e:
            if ch.closed:
                raise ChannelClosedError("client was closed during subscribe") from e
            raise
        finally:
            with self._lock:
                self._opening.pop(id(ch), None)
        with self._lock:
            if self._closed.is_set():
                late = True
            else:
                late = False
                self._channels[id(ch)] = ch
                self._start_keepalive_locked()
        if late:
            ch.close()
            raise ChannelClosedError("client was closed during subscribe")
        return ch

    def _forget(self, channel: Channel) -> None:
        """A channel closed (its ``on_closed`` callback): drop it from the registry."""
        with self._lock:
            self._channels.pop(id(channel), None)

    # -- lifecycle ---------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Close every channel (joining their threads) and the HTTP session.

        Idempotent and safe from any thread, including a hook. The channels
        are closed together against the one deadline
        (:func:`~cohrt_sync.channel.close_channels`), so it returns within
        ``timeout`` seconds whatever the server does, a frozen or unreachable
        one included; every library thread has ended then, unless a hook
        never returns (it is logged).

        :param timeout: overall deadline in seconds.
        """
        _fork.follow(self)
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed.set()
            channels = [*self._channels.values(), *self._opening.values()]
        close_channels(channels, deadline)
        with self._lock:
            keepalive = self._keepalive
        if keepalive is not None and keepalive is not threading.current_thread():
            # It woke when _closed was set; a ping stuck on a frozen peer was
            # failed when close_channels cut that socket.
            keepalive.join(max(0.0, deadline - time.monotonic()))
            if keepalive.is_alive():  # pragma: no cover - it only waits on an Event
                log.warning("thread %s still running after close()", keepalive.name)
        self._http.close()
        _live_clients.discard(self)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until :meth:`close` is called (from a hook or another thread).

        :param timeout: seconds, or ``None`` to wait indefinitely.
        :returns: True if the client is closed.
        """
        _fork.follow(self)
        end = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            # Short slices keep Ctrl-C responsive on every platform.
            slice_ = 0.5 if end is None else min(0.5, end - time.monotonic())
            if slice_ <= 0:
                break
            self._closed.wait(slice_)
        return self._closed.is_set()

    def run_forever(self, *, handle_sigterm: bool = True) -> None:
        """Listen until :meth:`close`, Ctrl-C or SIGTERM; then close cleanly.

        Every way out closes the client: each channel's ``on_closed`` fires
        and its socket sends a close frame, so the other members see it leave.
        Ctrl-C returns normally; so does SIGTERM (``systemctl stop``,
        ``docker stop``, Kubernetes), so a worker's process exits 0.

        SIGTERM is caught only where the library may own it: when this runs
        in the main thread and the application has set no SIGTERM handler of
        its own (the previous handler is restored on return). Otherwise stop
        it yourself with :meth:`close` from your own handler's thread
        (``docs/lifecycle.md``).

        :param handle_sigterm: ``False`` leaves SIGTERM to its current handler.
        """
        signums = (signal.SIGTERM,) if handle_sigterm else ()
        try:
            with raise_on_signals(signums):
                self.wait()
        except KeyboardInterrupt:
            log.info("interrupted; closing")
        except SignalReceived as e:
            log.info("%s; closing", e)
        finally:
            self.close()
