"""The HTTP layer: one ``requests.Session``, the edge bearer, retries, error mapping.

Every HTTP call of the client goes through :meth:`HttpTransport.request`,
which is safe to call from many threads at once (hooks publish from channel
threads). A call's retries stay inside the policy's ``budget``: a wait that
would end past it (a long ``Retry-After``) is not slept on, the error is
raised at once, and a retried attempt's timeouts are cut to what is left.
HTTP transport errors are translated into the
:class:`~cohrt_sync.CohrtError` tree here and nowhere else (the WebSocket
side's are, in :mod:`cohrt_sync._ws`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import attrs
import requests
import requests.adapters
import urllib3
import urllib3.exceptions

from . import _fork
from ._cancel import TrackingAdapter, bound, cancelled
from ._redact import RedactingFilter, Redactor, add_filter
from ._redact import scrub_exception as _scrub_exception
from .errors import (
    ChannelClosedError,
    CohrtConnectionError,
    CohrtError,
    CohrtTimeoutError,
    ProtocolError,
    error_from_response,
)
from .retry import DEFAULT_RETRY, Retry

log = logging.getLogger("cohrt_sync.http")

#: Statuses from ``POST /edge/session`` meaning "no bearer here, use ``?key=``".
SESSION_UNSUPPORTED = frozenset({404, 405, 501})

#: The longest edge bearer lifetime believed, in seconds (the spec's is 60).
_MAX_BEARER_S = 86_400

#: Retry modes of :meth:`HttpTransport.request`.
RETRY_ALWAYS = "always"
RETRY_UNSENT = "unsent"
#: A request carrying an ``Idempotency-Key``: retried as ``RETRY_ALWAYS`` while
#: the server says it deduplicates the key (:data:`IDEMPOTENT_PUBLISH`), as
#: ``RETRY_UNSENT`` otherwise.
RETRY_IDEMPOTENT = "idempotent"

#: The answer header by which a server says that ``POST /edge/realtime``
#: deduplicates ``Idempotency-Key``; its value is how many seconds a key is
#: remembered. The local server sends it on every answer
#: (cohrt_sync/server/app.py); the hosted API's spec documents no key, and
#: its answers do not carry it.
IDEMPOTENT_PUBLISH = "Idempotent-Publish"

#: Statuses a gateway answers after the server behind it may have applied
#: the request: as ambiguous as a timeout.
_AMBIGUOUS_STATUSES = frozenset({502, 504})

#: The client's secrets (its application keys); credentials are also
#: recognised by shape (``?key=``/``?token=`` under any encoding of the name,
#: ``Authorization``/``Bearer`` values, JWTs), so short-lived tokens (one per
#: reconnect) need no registration.
_REDACTOR = Redactor()
_FILTER = RedactingFilter(_REDACTOR.redact)
#: Loggers that format URLs or requests: urllib3 logs every request line (path
#: and query string) at DEBUG, websocket-client's trace the socket URL with
#: its token. A filter applies only to records of its own logger, so each is named.
_FILTERED_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.poolmanager",
    "requests",
    "websocket",
    "cohrt_sync",
    "cohrt_sync.http",
    "cohrt_sync.channel",
    "cohrt_sync.delivery",
    "cohrt_sync.client",
    "cohrt_sync.plugins",
    "cohrt_sync.web",
)
for _name in _FILTERED_LOGGERS:
    add_filter(logging.getLogger(_name), _FILTER)


def redact(text: str) -> str:
    """Replace registered secrets (application keys) and anything shaped like a
    credential (``token=``/``key=`` query values, ``Authorization`` and ``Bearer``
    values, JWTs) with ``***``.

    :param text: any text about to be shown.
    """
    return _REDACTOR.redact(text)


def register_secret(secret: str) -> None:
    """Make ``secret`` redacted from log records and exception texts.

    :param secret: the application key.
    """
    _REDACTOR.add(secret)


def scrub_exception(exc: BaseException) -> BaseException:
    """Redact secrets from ``exc`` and every exception chained to it, in place.

    requests and urllib3 put the full URL (query string included) into their
    exception messages and attributes (``MaxRetryError.url``, the request's
    URL and headers); the cause chain is printed with any traceback, so it is
    cleaned before being attached as ``__cause__``.

    :param exc: the exception to clean.
    :returns: the same exception.
    """
    return _scrub_exception(exc, _REDACTOR.redact)


def _is_unsent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (connect phase)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", inner)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def make_session(pool_maxsize: int = 32) -> requests.Session:
    """A keep-alive session whose pool fits many threads, without urllib3 retries.

    :param pool_maxsize: connections kept per host.
    """
    session = requests.Session()
    adapter = TrackingAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "cohrt-sync"
    return session


def fresh_pools(session: requests.Session) -> None:
    """Give every adapter of ``session`` new, empty connection pools.

    After a fork the pools hold the parent's keep-alive connections: a
    request on one would interleave with the parent's on the same socket.
    The old pools are dropped untouched (their locks may be held by a
    thread that only the parent has; their sockets are closed, never shut
    down, when collected), the way ``requests`` rebuilds an adapter it
    unpickles.

    :param session: the session, ours or the caller's.
    """
    for adapter in session.adapters.values():
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            # The stubs leave these out; requests defines them on HTTPAdapter.
            adapter.__setstate__(adapter.__getstate__())  # type: ignore[attr-defined]


def _read_body(resp: requests.Response, limit: int, what: str) -> bytes:
    """The answer's body, decoded, refused past ``limit`` bytes; the connection is released.

    Counted as decoded, so a compressed answer can't expand past the limit,
    and read in pieces, so a server that lies or never stops costs at most
    ``limit`` bytes.
    """
    try:
        claimed = resp.headers.get("Content-Length", "")
        if claimed.isdigit() and int(claimed) > limit:
            raise _too_large(what, limit)
        chunks = []
        size = 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise _too_large(what, limit)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        resp.close()


def _too_large(what: str, limit: int) -> ProtocolError:
    return ProtocolError(
        f"{what}: the answer is over max_response_size ({limit} bytes) and was not read;"
        " raise Client(max_response_size=...) if answers this big are expected"
    )


@attrs.define(eq=False)
class HttpTransport:
    """Thread-safe HTTP access to the edge API with one shared session.

    :param base_url: ``https://cohesivity.ai`` or a local server's URL.
    :param key: the application key (never shown).
    :param timeout: ``(connect, read)`` timeouts in seconds.
    :param retry: the retry policy for retryable calls.
    :param session: the session to use (one is made when omitted).
    :param max_response_size: bytes of the largest answer body read, once
        decoded; a larger one raises :class:`ProtocolError`.
    """

    base_url: str
    key: str = attrs.field(repr=False)
    timeout: Tuple[float, float] = (5.0, 30.0)
    retry: Retry = DEFAULT_RETRY
    session: requests.Session = attrs.field(factory=make_session, repr=False)
    max_response_size: int = 64 * 2**20
    _bearer_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _bearer: Optional[str] = attrs.field(default=None, init=False, repr=False)
    _bearer_refresh_at: float = attrs.field(default=0.0, init=False, repr=False)
    _bearer_unsupported: bool = attrs.field(default=False, init=False, repr=False)
    _stop: threading.Event = attrs.field(factory=threading.Event, init=False, repr=False)
    _dedupes: bool = attrs.field(default=False, init=False, repr=False)
    #: The process whose connections the session's pools hold (see cohrt_sync._fork).
    _pid: int = attrs.field(factory=os.getpid, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        register_secret(self.key)

    def _follow_fork(self) -> None:
        # A forked child: its own pools and locks; the bearer is only a
        # credential, still good here.
        self._bearer_lock = threading.Lock()
        self._stop = _fork.new_event(self._stop.is_set())
        fresh_pools(self.session)

    def close(self) -> None:
        """Interrupt retry waits and close the session's connections."""
        _fork.follow(self)
        self._stop.set()
        self.session.close()

    @property
    def dedupes_publish(self) -> bool:
        """Whether the server said, on its last successful answer, that it
        deduplicates ``Idempotency-Key`` on publish (:data:`IDEMPOTENT_PUBLISH`).

        Learnt from every 2xx answer (the edge session mint comes first), so a
        client knows before its first publish fails; a gateway's error page
        does not unlearn it. False until then, and against the hosted API.
        """
        return self._dedupes

    def _retries_everything(self, retry_mode: str) -> bool:
        return retry_mode == RETRY_ALWAYS or (retry_mode == RETRY_IDEMPOTENT and self._dedupes)

    def _uncertain(self, retry_mode: str, unsure: Optional[str]) -> str:
        """What to add to a failure the server may have applied: that it is
        uncertain, and what to do (empty for a request that is safe to repeat)."""
        if unsure is None or retry_mode == RETRY_ALWAYS:
            return ""
        if self._retries_everything(retry_mode):
            return (f"; it may or may not have been {unsure}: the server deduplicates "
                    "Idempotency-Key, so sending it again with the same key is safe")
        why = ("this server does not say it deduplicates Idempotency-Key"
               if retry_mode == RETRY_IDEMPOTENT else "it has no idempotency key")
        return (f"; it may or may not have been {unsure}, and was not retried since {why}: "
                "check before sending it again")

    # -- edge session bearer -------------------------------------------------

    def _mint_bearer(self, started: float) -> Tuple[Optional[str], float]:
        try:
            body = self._with_retries(
                "POST", "/edge/session", {}, None, {}, RETRY_ALWAYS, "edge session",
                auth="key", started=started,
            )
        except CohrtError as e:
            if e.status_code in SESSION_UNSUPPORTED:
                log.info("no edge session endpoint (HTTP %s); using ?key=", e.status_code)
                self._bearer_unsupported = True
                return None, 0.0
            raise
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError("edge session (POST /edge/session): the answer carried no token")
        expires_in = body.get("expires_in", 60)
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or not (
            0 < expires_in <= _MAX_BEARER_S
        ):
            # Not a lifetime (infinity, NaN, 10**400 that no float holds): the spec's 60 s.
            expires_in = 60
        # Refresh early so a request in flight never carries a token that dies on arrival.
        margin = min(30.0, max(1.0, float(expires_in) * 0.2))
        return token, time.monotonic() + float(expires_in) - margin

    def bearer(self, started: Optional[float] = None) -> Optional[str]:
        """The current edge bearer, minted (once, for all threads) when missing or stale.

        :param started: ``time.monotonic()`` when the call needing it began (a
            mint spends that call's retry budget); default now.
        :returns: the token, or ``None`` when the server has no session endpoint.
        """
        _fork.follow(self)
        with self._bearer_lock:
            if self._bearer is not None and time.monotonic() < self._bearer_refresh_at:
                return self._bearer
            if self._bearer_unsupported:
                return None
            self._bearer, self._bearer_refresh_at = self._mint_bearer(
                time.monotonic() if started is None else started
            )
            return self._bearer

    def invalidate_bearer(self, token: str) -> None:
        """Forget ``token`` after a 401 unless another thread already replaced it.

        :param token: the bearer that was rejected.
        """
        with self._bearer_lock:
            if self._bearer == token:
                self._bearer = None

    # -- requests ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        retry_mode: str = RETRY_ALWAYS,
        context: str = "request",
        app_auth: bool = False,
        unsure: Optional[str] = None,
    ) -> Any:
        """Send a request with auth, retries and error mapping; return decoded JSON.

        :param method: HTTP method.
        :param path: path below ``base_url``.
        :param params: query parameters.
        :param body: JSON body, already encoded.
        :param headers: extra headers.
        :param retry_mode: ``"always"`` retries transport errors and retryable
            statuses; ``"unsent"`` retries only what provably was not applied
            (connect failures and 429); ``"idempotent"`` (a request carrying an
            ``Idempotency-Key``) is ``"always"`` while the server says it
            deduplicates the key (:attr:`dedupes_publish`), ``"unsent"`` otherwise.
        :param context: what is being done, for error messages.
        :param app_auth: authenticate with ``Authorization: Bearer <application
            key>`` (the provisioning API) instead of the edge bearer.
        :param unsure: for a request that must not be applied twice, what it
            does, as in "it may or may not have been *published*": a failure
            after which the server may have applied it (a timeout, a dropped
            connection, a 502 or 504) then says so, and what to do.
        :raises CohrtError: the mapped failure.
        """
        _fork.follow(self)
        send_headers = dict(headers or {})
        if app_auth:
            send_headers["Authorization"] = f"Bearer {self.key}"
        return self._with_retries(
            method,
            path,
            dict(params or {}),
            body,
            send_headers,
            retry_mode,
            context,
            auth="none" if app_auth else "edge",
            unsure=unsure,
        )

    def _with_retries(
        self,
        method: str,
        path: str,
        params: Dict[str, Any],
        body: Optional[bytes],
        headers: Dict[str, str],
        retry_mode: str,
        context: str,
        *,
        auth: str = "edge",
        started: Optional[float] = None,
        unsure: Optional[str] = None,
    ) -> Any:
        # auth: "edge" = bearer, else ?key=; "key" = ?key= only; "none" = caller's headers.
        retry = self.retry
        start = time.monotonic() if started is None else started
        timeout = self.timeout
        refreshed = False
        url = self.base_url + path
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        while True:
            if cancelled():
                raise ChannelClosedError(f"{context}: cancelled, the channel is closing")
            bearer = self.bearer(start) if auth == "edge" else None
            send_headers = headers
            send_params: Iterable[Tuple[str, Any]] = params.items()
            if bearer is not None:
                send_headers = {**headers, "Authorization": f"Bearer {bearer}"}
            elif auth != "none":
                send_params = [*params.items(), ("key", self.key)]
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=list(send_params),
                    data=body,
                    headers=send_headers,
                    timeout=timeout,
                    stream=True,
                )
                content = _read_body(resp, self.max_response_size, f"{context} ({method} {path})")
            except requests.RequestException as e:
                scrub_exception(e)
                if cancelled():
                    raise ChannelClosedError(
                        f"{context}: cancelled, the channel is closing"
                    ) from e
                unsent = _is_unsent(e)
                if unsent or self._retries_everything(retry_mode):
                    retry = retry.increment(error=e)
                    pause = self._pause(retry, start)
                    if pause is not None:
                        timeout = pause
                        log.debug("%s: %s, retrying", context, type(e).__name__)
                        continue
                note = "" if unsent else self._uncertain(retry_mode, unsure)
                if isinstance(e, requests.exceptions.Timeout):
                    raise CohrtTimeoutError(
                        f"{context} timed out: {redact(str(e))}{note}"
                    ) from e
                raise CohrtConnectionError(f"{context} failed: {redact(str(e))}{note}") from e
            status = resp.status_code
            if 200 <= status < 300:
                advertised = resp.headers.get(IDEMPOTENT_PUBLISH)
                self._dedupes = advertised is not None and _seconds(advertised)
                try:
                    return json.loads(content)
                except ValueError as e:
                    raise ProtocolError(
                        f"{context} ({method} {path}): the server sent invalid JSON"
                    ) from e
            if status == 401 and bearer is not None and not refreshed:
                # The server may have expired the bearer before our own clock did.
                refreshed = True
                self.invalidate_bearer(bearer)
                continue
            err = response_error(status, content, resp.headers, context)
            may_retry = retry.is_retryable_status(status) and (
                status == 429 or self._retries_everything(retry_mode)
            )
            if may_retry:
                after = getattr(err, "retry_after", None)
                retry = retry.increment(status=status, retry_after=after)
                pause = self._pause(retry, start)
                if pause is not None:
                    timeout = pause
                    log.debug("%s: HTTP %s, retrying", context, status)
                    continue
            if status in _AMBIGUOUS_STATUSES:
                note = self._uncertain(retry_mode, unsure)
                if note:
                    err.message += note
                    err.args = (err.message,)
            raise err

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True when cut short (the client closed, or this
        thread's bound cancel event was set)."""
        if not bound():
            return self._stop.wait(seconds)
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self._stop.wait(min(left, 0.05)) or cancelled():
                return True

    def _pause(self, retry: Retry, start: float) -> Optional[Tuple[float, float]]:
        """Wait before the next attempt; return its timeouts, or None to give up now.

        The attempt's timeouts are cut to what is left of the budget, so waits
        and attempts together end within it.
        """
        wait = retry.next_wait(time.monotonic() - start)
        if wait is None or self._wait(wait):
            return None
        left = retry.remaining(time.monotonic() - start)
        if left is None:
            return self.timeout
        if left <= 0:
            return None
        connect, read = self.timeout
        return (min(connect, left), min(read, left))


def _seconds(value: str) -> bool:
    """Whether a header value is a positive whole number of seconds."""
    text = value.strip()
    return text.isdigit() and len(text) <= 12 and int(text) > 0


def response_error(
    status: int, body: bytes, headers: Optional[Mapping[str, str]], context: str
) -> CohrtError:
    """The :class:`CohrtError` for a refused request, with server-supplied text redacted.

    An error page may echo the request URL, ``?key=`` included.

    :param status: the HTTP status.
    :param body: the raw response body.
    :param headers: the response headers.
    :param context: what was attempted.
    """
    err = error_from_response(status, body, headers, context=context)
    err.message = redact(err.message)
    err.args = (err.message,)
    if isinstance(err.body, bytes):
        err.body = redact(err.body.decode("utf-8", "replace")).encode("utf-8")
    elif err.body is not None:
        try:
            err.body = json.loads(redact(json.dumps(err.body)))
        except ValueError:
            err.body = None
    return err


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as sent on the wire.

    :param value: a JSON-serialisable value.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
