"""The exception tree: every error the client raises derives from :class:`CohrtError`.

HTTP failures are translated once, in :func:`error_from_response`, from the
Google-style envelope ``{"error": {"code", "message", "status"}}`` (or from a
non-JSON body). Transport failures become :class:`CohrtConnectionError` or
:class:`CohrtTimeoutError` with the original exception as ``__cause__``.
None of these messages ever contains the application key.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type

from .retry import parse_retry_after

__all__ = [
    "AuthError",
    "BadRequestError",
    "ChannelClosedError",
    "CohrtConnectionError",
    "CohrtError",
    "CohrtTimeoutError",
    "HistoryPageError",
    "InvalidArgumentTypeError",
    "NotFoundError",
    "NotProvisionedError",
    "ProtocolError",
    "RateLimitedError",
    "ServerError",
    "TenantPausedError",
    "error_class",
    "error_from_frame",
    "error_from_response",
]


class CohrtError(Exception):
    """Root of every error raised by :mod:`cohrt_sync`.

    :param message: human-readable text (never contains a key).
    :param status_code: the HTTP status, when the error came from a response.
    :param status: the envelope's status name (``"INVALID_ARGUMENT"`` …), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        status: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.status = status
        #: The response body (decoded JSON, else bytes) when the error came from one.
        self.body: Any = None

    def __str__(self) -> str:
        if self.status_code is not None:
            return f"{self.message} (HTTP {self.status_code} {self.status or ''})".rstrip()
        return self.message


class AuthError(CohrtError):
    """The key, edge bearer or connection token was rejected (HTTP 401, or 403 denied)."""


class NotProvisionedError(CohrtError):
    """The realtime resource is not provisioned or the tenant is paused (HTTP 403)."""


class TenantPausedError(NotProvisionedError):
    """The tenant is paused: a hard cap of its tier was exceeded, and every edge
    call, socket and publish is refused until the tenant is claimed or unpaused.

    Recognised by :func:`is_paused`: an HTTP 403 (or a socket's error frame)
    whose message says ``paused``.
    """


def is_paused(status_code: Optional[int], message: str) -> bool:
    """Whether a refusal says the tenant is paused.

    The rule, kept loose because only the local server's wording is known:
    a 403 (or no status: a socket's error frame) whose message contains the
    word ``paused`` in any case. The envelope's ``status`` name is not
    required (the local server says ``FAILED_PRECONDITION``).

    :param status_code: the HTTP status, or None for an error frame.
    :param message: the envelope's message or the frame's text.
    """
    return status_code in (None, 403) and "paused" in message.lower()


class RateLimitedError(CohrtError):
    """A rate limit or cap was hit (HTTP 429).

    :param retry_after: seconds the server asked us to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: Optional[float] = None,
        status_code: Optional[int] = 429,
        status: Optional[str] = None,
    ) -> None:
        super().__init__(message, status_code=status_code, status=status)
        self.retry_after = retry_after


class BadRequestError(CohrtError, ValueError):
    """The request was invalid: rejected by the server (400/409/413) or by the
    client's own argument checks before any network call."""


class InvalidArgumentTypeError(BadRequestError, TypeError):
    """An argument had the wrong type (for example a ``bool`` ``user_id``)."""


class NotFoundError(CohrtError):
    """The endpoint or resource does not exist (HTTP 404)."""


class ServerError(CohrtError):
    """The server failed (HTTP 5xx, or a ``Failed to persist message`` frame).

    :param retry_after: seconds from a 503's ``Retry-After``, when given.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: Optional[float] = None,
        status_code: Optional[int] = None,
        status: Optional[str] = None,
    ) -> None:
        super().__init__(message, status_code=status_code, status=status)
        self.retry_after = retry_after


class ProtocolError(ServerError):
    """The server answered with something the API never sends: a body or frame
    of the wrong shape, history out of order or from another channel. The
    message names the endpoint; retrying may help if the server recovers.
    """


class HistoryPageError(ProtocolError):
    """A history page that breaks the API's contract: rows at or below the cursor,
    out of id order, of another channel, or items that are not messages.

    :meth:`cohrt_sync.Client.history` raises it for such a page; the history
    walk (:meth:`cohrt_sync.Client.iter_history`, a channel's catch-up) keeps
    :attr:`messages` and goes on.

    :param message: the error text, naming the endpoint.
    :param context: what was asked, naming the endpoint.
    :param problems: each kind of problem found, with an example, in the
        order found.
    :param messages: the page's items that are provably right (past the
        cursor, this channel's, well-formed): :class:`~cohrt_sync.Message`
        values in id order.
    :param served: how many items the page held, the dropped ones included.
    """

    def __init__(
        self,
        message: str,
        *,
        context: str,
        problems: Mapping[str, str],
        messages: Sequence[Any],
        served: int,
    ) -> None:
        super().__init__(message)
        self.context = context
        self.problems: Dict[str, str] = dict(problems)
        self.messages: List[Any] = list(messages)
        self.served = served


class CohrtConnectionError(CohrtError):
    """The server could not be reached, or the connection was lost."""


class ChannelClosedError(CohrtConnectionError):
    """The channel is closed, or is reconnecting and cannot send right now."""


class CohrtTimeoutError(CohrtError):
    """A request, handshake or publish acknowledgement did not arrive in time."""


def error_class(
    status_code: int, status: Optional[str] = None, message: str = ""
) -> Type[CohrtError]:
    """The :class:`CohrtError` subclass for a failed HTTP status: the one table.

    :param status_code: the HTTP status code.
    :param status: the envelope's status name, if any (it tells a denied 403
        from a not-provisioned one).
    :param message: the envelope's message (likewise).
    """
    if status_code == 401:
        return AuthError
    if status_code == 403:
        if is_paused(status_code, message):
            return TenantPausedError
        if status == "PERMISSION_DENIED" and "provision" not in message.lower():
            return AuthError
        return NotProvisionedError
    if status_code == 404:
        return NotFoundError
    if status_code == 429:
        return RateLimitedError
    if 400 <= status_code < 500:
        return BadRequestError
    if status_code >= 500:
        return ServerError
    return CohrtError


def error_from_frame(text: str) -> CohrtError:
    """The :class:`CohrtError` for a socket's ``{"error": text}`` frame.

    :param text: the frame's error text.
    :returns: an exception instance (not raised).
    """
    if text.startswith("Failed to persist"):
        return ServerError(text)
    if is_paused(None, text):
        return TenantPausedError(text)
    return BadRequestError(text)


def header(headers: Optional[Mapping[str, str]], name: str) -> Optional[str]:
    """The value of header ``name`` whatever the case of its key, or None.

    requests' headers ignore case, but websocket-client hands a refused
    handshake's headers over as a plain dict with lower-cased names.

    :param headers: response headers, any mapping.
    :param name: the header's name.
    """
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def error_from_response(
    status_code: int,
    body: bytes,
    headers: Optional[Mapping[str, str]] = None,
    *,
    context: str = "request",
) -> CohrtError:
    """Build the right :class:`CohrtError` for a failed HTTP response.

    :param status_code: the HTTP status code.
    :param body: the raw response body (JSON envelope or anything else).
    :param headers: response headers, for ``Retry-After``.
    :param context: a short description of what was attempted, for the message.
    :returns: an exception instance (not raised).
    """
    message = ""
    status: Optional[str] = None
    try:
        parsed: Any = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        err = parsed["error"]
        message = str(err.get("message") or "")
        status = str(err["status"]) if err.get("status") is not None else None
    elif isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        message = parsed["error"]
    else:
        text = body[:200].decode("utf-8", "replace").strip()
        message = text
    if not message:
        message = "no details"
    full = f"{context} failed: {message}"
    retry_after = parse_retry_after(header(headers, "Retry-After"))
    kwargs: dict[str, Any] = {"status_code": status_code, "status": status}
    cls = error_class(status_code, status, message)
    exc: CohrtError
    if cls is RateLimitedError:
        exc = RateLimitedError(full, retry_after=retry_after, **kwargs)
    elif cls is ServerError:
        exc = ServerError(full, retry_after=retry_after, **kwargs)
    else:
        exc = cls(full, **kwargs)
    # The whole decoded body, for callers that read more than the message
    # (RealtimeKit's Cloudflare envelope carries a list of errors).
    exc.body = parsed if parsed is not None else body
    return exc
