"""The :class:`Client`: HTTP calls, channel subscriptions, plugins, lifecycle."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import attrs
import pluggy

from ._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport, encode_json, make_session
from .channel import Channel
from .dm import send_dm_request as _send_dm_request
from .errors import (
    BadRequestError,
    ChannelClosedError,
    CohrtError,
    InvalidArgumentTypeError,
)
from .models import (
    Message,
    PublishAck,
    Token,
    check_after,
    check_channel,
    check_data,
    check_event,
    check_limit,
    check_ttl,
    check_user_id,
    publish_frame,
)
from .plugins import make_plugin_manager
from .realtimekit import RealtimeKit
from .retry import DEFAULT_RETRY, RECONNECT_BACKOFF, Retry

__all__ = ["DEFAULT_BASE_URL", "Client"]

log = logging.getLogger("cohrt_sync.client")

#: Used when neither ``base_url=`` nor ``$COHESIVITY_BASE_URL`` is given.
DEFAULT_BASE_URL = "https://cohesivity.ai"

_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_forgotten_clients() -> None:
    # Channel threads are daemons so an un-closed client cannot block exit;
    # closing here still says goodbye to the server and joins the threads.
    for client in list(_live_clients):
        try:
            client.close(timeout=2.0)
        except Exception:  # pragma: no cover - best effort at exit
            pass


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
    :param plugins: plugin objects to register besides the installed ones.
    :param load_plugins: load installed plugins from the ``cohrt_sync``
        entry-point group (``$COHRT_SYNC_LOAD_PLUGINS`` filters them).
    :param timeout: HTTP ``(connect, read)`` timeouts in seconds.
    :param retry: HTTP retry policy.
    :param reconnect_backoff: channel reconnect policy (``total=None``: forever;
        a channel whose ``total`` attempts all fail reports it to ``on_error``
        and closes).
    :param connect_timeout: seconds for a socket to open and send ``subscribed``.
    :param ack_timeout: default seconds :meth:`Channel.publish` waits for its ack.
    :param ping_interval: seconds of silence before the client pings a socket.
    :param ping_timeout: seconds without a pong before a socket counts as dead.
    :param queue_size: frames a channel buffers for its dispatcher (overflow
        policy: see :mod:`cohrt_sync.channel`).
    :param dispatch_linger: seconds a busy dispatcher waits to batch frames
        (0 wakes it for every frame).
    :param session: a ``requests.Session`` to use instead of a new one.
    """

    key: Optional[str] = attrs.field(default=None, converter=_default_key)
    base_url: str = attrs.field(default=None, converter=_default_base_url)
    plugins: Sequence[object] = ()
    load_plugins: bool = True
    timeout: Tuple[float, float] = (5.0, 30.0)
    retry: Retry = DEFAULT_RETRY
    reconnect_backoff: Retry = RECONNECT_BACKOFF
    connect_timeout: float = 10.0
    ack_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    queue_size: int = 10_000
    dispatch_linger: float = 0.001
    session: Any = None

    _http: HttpTransport = attrs.field(init=False)
    _pm: pluggy.PluginManager = attrs.field(init=False)
    _channels: Dict[int, Channel] = attrs.field(factory=dict, init=False)
    # Channels inside subscribe(), not open yet: close() must be able to cut them.
    _opening: Dict[int, Channel] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _closed: threading.Event = attrs.field(factory=threading.Event, init=False)
    _keepalive: Optional[threading.Thread] = attrs.field(default=None, init=False)
    _realtimekit: Optional[RealtimeKit] = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.key:
            raise BadRequestError(
                "no application key: pass key= or set the COHESIVITY_KEY environment variable"
            )
        if self.queue_size < 2:
            raise BadRequestError("queue_size must be at least 2")
        self._http = HttpTransport(
            self.base_url,
            self.key,
            timeout=self.timeout,
            retry=self.retry,
            session=self.session if self.session is not None else make_session(),
        )
        self._pm = make_plugin_manager(self.plugins, load_entrypoints=self.load_plugins)
        _live_clients.add(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._channels)} channel(s)"
        return f"<cohrt_sync.Client {self.base_url} {state}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration read by channels ----------------------------------------

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
        with self._lock:
            return list(self._channels.values())

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

    # -- HTTP API ---------------------------------------------------------------

    def mint_token(
        self, user_id: Union[str, int], name: Optional[str] = None, ttl: int = 300
    ) -> Token:
        """Mint a WebSocket connection token (``POST /edge/realtime/token``).

        :param user_id: the user's id; an ``int`` is sent as a string.
        :param name: display name shown in presence.
        :param ttl: token lifetime in seconds, 60 to 3600.
        :raises BadRequestError: for invalid arguments (before any request).
        """
        uid = check_user_id(user_id)
        check_ttl(ttl)
        if name is not None and not isinstance(name, str):
            raise BadRequestError("name must be a str or None")
        body: Dict[str, Any] = {"user_id": uid, "ttl": ttl}
        if name is not None:
            body["name"] = name
        raw = self._http.request(
            "POST",
            "/edge/realtime/token",
            body=encode_json(body),
            retry_mode=RETRY_ALWAYS,
            context="mint token",
        )
        token = raw.get("token") if isinstance(raw, dict) else None
        if not isinstance(token, str):
            raise CohrtError("token response carried no token")
        return Token(
            token=token, expires_in=int(raw.get("expires_in", ttl)), user_id=uid, name=name
        )

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

        Retries: without ``idempotency_key`` only failures that provably
        were not applied are retried (connection refused, connect timeout,
        429), so a publish is never sent twice. With one, it is sent as the
        ``Idempotency-Key`` header and every retryable failure (timeouts,
        dropped connections, 502/503/504) is retried too, because a server
        that dedupes the key (the local server does) applies it once.

        :param channel: the channel name.
        :param data: the JSON payload.
        :param event: the event type.
        :param persist: store in history.
        :param idempotency_key: a stable key for this logical message.
        :raises BadRequestError: invalid arguments (before any request) or refused.
        """
        check_channel(channel)
        check_event(event)
        encoded = check_data(data)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not idempotency_key
        ):
            raise BadRequestError("idempotency_key must be a non-empty str")
        body = publish_frame(event, encoded, persist, channel=channel).encode()
        raw = self._http.request(
            "POST",
            "/edge/realtime",
            body=body,
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else None,
            retry_mode=RETRY_ALWAYS if idempotency_key else RETRY_UNSENT,
            context=f"publish to {channel!r}",
        )
        return PublishAck.from_wire(raw if isinstance(raw, dict) else {}, channel, event)

    def history(self, channel: str, after: int = 0, limit: int = 50) -> List[Message]:
        """One page of persisted messages with ``id > after``, oldest first.

        :param channel: the channel name.
        :param after: id cursor (exclusive); 0 for the beginning.
        :param limit: page size, 1 to 100.
        """
        check_channel(channel)
        check_after(after)
        check_limit(limit)
        raw = self._http.request(
            "GET",
            "/edge/realtime/history",
            params={"channel": channel, "after": after, "limit": limit},
            retry_mode=RETRY_ALWAYS,
            context=f"history of {channel!r}",
        )
        items = raw.get("messages", []) if isinstance(raw, dict) else []
        return [Message.from_wire(item, channel) for item in items if isinstance(item, dict)]

    def iter_history(self, channel: str, after: int = 0, page_size: int = 100) -> Iterator[Message]:
        """Every persisted message with ``id > after``, fetched page by page, lazily.

        :param channel: the channel name.
        :param after: id cursor (exclusive).
        :param page_size: messages per request, 1 to 100.
        """
        check_channel(channel)
        check_after(after)
        check_limit(page_size)
        cursor = after
        while True:
            page = self.history(channel, after=cursor, limit=page_size)
            if not page:
                return
            yield from page
            last = page[-1].id
            if last is None or last <= cursor:
                return
            cursor = last

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Run SQL on the tenant database (``POST /edge/database``); return the rows.

        Not retried once sent: a write must not run twice.

        :param query: the SQL text with ``?`` placeholders.
        :param params: placeholder values.
        """
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError("query must be a non-empty str")
        if params is not None and not isinstance(params, (list, tuple)):
            # A str or dict would be split into characters or keys, silently.
            raise InvalidArgumentTypeError("params must be a list or tuple of values")
        values = list(params or [])
        check_data(values)
        raw = self._http.request(
            "POST",
            "/edge/database",
            body=encode_json({"query": query, "params": values}),
            retry_mode=RETRY_UNSENT,
            context="sql",
        )
        rows = raw.get("results", []) if isinstance(raw, dict) else []
        return [row for row in rows if isinstance(row, dict)]

    @property
    def realtimekit(self) -> RealtimeKit:
        """Video/voice meetings via ``/edge/realtimekit``, over this client's HTTP layer."""
        # Built on first use: most clients never touch meetings.
        if self._realtimekit is None:
            self._realtimekit = RealtimeKit(self._http)
        return self._realtimekit

    def provision(self, write_region: Optional[str] = None) -> Dict[str, Any]:
        """Provision the realtime resource (``POST /api/resources/realtime``).

        :param write_region: D1 region or alias (``us``, ``eu``, ``apac`` …).
        :returns: the server's JSON response.
        """
        body = encode_json({"write_region": write_region}) if write_region else None
        raw = self._http.request(
            "POST", "/api/resources/realtime", body=body, app_auth=True, context="provision"
        )
        return raw if isinstance(raw, dict) else {}

    def deprovision(self) -> Dict[str, Any]:
        """Delete the realtime resource (``DELETE /api/resources/realtime``).

        :returns: the server's JSON response.
        """
        raw = self._http.request(
            "DELETE", "/api/resources/realtime", app_auth=True, context="deprovision"
        )
        return raw if isinstance(raw, dict) else {}

    def send_dm_request(
        self, from_user: Union[str, int], to_user: Union[str, int], **extra: Any
    ) -> PublishAck:
        """Publish a ``dm_request`` to ``user:<to_user>``; see :func:`cohrt_sync.send_dm_request`.

        :param from_user: the requesting user id.
        :param to_user: the recipient user id.
        :param extra: more JSON fields for the notification data.
        """
        return _send_dm_request(self, from_user, to_user, extra=extra)

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
        if name is not None and not isinstance(name, str):
            raise InvalidArgumentTypeError(f"name must be a str or None, not {type(name).__name__}")
        ch = Channel(self, channel, uid, name, ttl, catch_up)
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
        with self._lock:
            self._channels.pop(id(channel), None)

    # -- lifecycle ---------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Close every channel (joining their threads) and the HTTP session.

        Idempotent. Returns within about ``timeout`` seconds.

        :param timeout: overall deadline in seconds.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed.set()
            channels = [*self._channels.values(), *self._opening.values()]
        for ch in channels:
            ch.close(timeout=max(0.5, deadline - time.monotonic()))
        with self._lock:
            keepalive = self._keepalive
        if keepalive is not None and keepalive is not threading.current_thread():
            keepalive.join(max(0.1, deadline - time.monotonic()))
            if keepalive.is_alive():  # pragma: no cover - it only waits on an Event
                log.warning("thread %s still running after close()", keepalive.name)
        self._http.close()
        _live_clients.discard(self)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until :meth:`close` is called (from a hook or another thread).

        :param timeout: seconds, or ``None`` to wait indefinitely.
        :returns: True if the client is closed.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            # Short slices keep Ctrl-C responsive on every platform.
            slice_ = 0.5 if end is None else min(0.5, end - time.monotonic())
            if slice_ <= 0:
                break
            self._closed.wait(slice_)
        return self._closed.is_set()

    def run_forever(self) -> None:
        """Listen until :meth:`close` or Ctrl-C; then close cleanly."""
        try:
            self.wait()
        except KeyboardInterrupt:
            log.info("interrupted; closing")
        finally:
            self.close()


