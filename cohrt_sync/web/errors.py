"""Every failure of the realtime routes as one JSON answer with the right HTTP status.

The envelope is the API's own (``{"error": {"code", "message", "status"}}``,
:mod:`cohrt_sync.envelope`), so the browser client reads one shape from the
routes and the edge alike. :func:`status_for` is the table: what the
browser did wrong keeps its 4xx, a limit keeps its 429 and ``Retry-After``,
and what went wrong between this server and the realtime API (its key
refused, the API down, hanging or unreachable) becomes 502/503/504: the
browser cannot fix those and must not take them for its own login failing.

Those 5xx answers carry a short message of their own
(:data:`BROWSER_MESSAGES`): the client's error text names hosts, ports and
urllib3's internals (``_TrackedHTTPPool(host=…): Max retries exceeded``),
which help an operator and tell a browser only how the server is built.
The detail goes to the ``cohrt_sync.web`` log instead.
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Tuple

from ..envelope import error_body
from ..errors import (
    AuthError,
    BadRequestError,
    CohrtError,
    CohrtTimeoutError,
    NotProvisionedError,
    RateLimitedError,
    ServerError,
)
from .answer import Answer, private

__all__ = [
    "BROWSER_MESSAGES",
    "NotConfiguredError",
    "RouteError",
    "browser_message",
    "error_answer",
    "status_for",
]

log = logging.getLogger("cohrt_sync.web")

#: What a browser reads for a failure between this server and the API.
BROWSER_MESSAGES = {
    502: "the realtime service failed: try again later",
    503: "the realtime service is unavailable: try again later",
    504: "the realtime service did not answer in time: try again",
}


class RouteError(CohrtError):
    """An answer a route chose itself: no user (401), not authorised (403), bad input (400).

    :param message: one line for the browser.
    :param status_code: the HTTP status to answer.
    :param status: the envelope's status name.
    """

    def __init__(self, message: str, status_code: int, status: str) -> None:
        super().__init__(message, status_code=status_code, status=status)


class NotConfiguredError(CohrtError):
    """The app has no application key: set ``COHRT_KEY`` (settings or environment)."""


def status_for(exc: CohrtError) -> Tuple[int, str, Optional[float]]:
    """The HTTP status, status name and ``Retry-After`` seconds to answer for ``exc``.

    :param exc: what a route raised.
    """
    if isinstance(exc, RouteError):
        return exc.status_code or 400, exc.status or "INVALID_ARGUMENT", None
    if isinstance(exc, RateLimitedError):
        return 429, "RESOURCE_EXHAUSTED", exc.retry_after
    if isinstance(exc, BadRequestError):
        return 400, "INVALID_ARGUMENT", None
    if isinstance(exc, (NotConfiguredError, NotProvisionedError, AuthError)):
        # The realtime API refused *this server's* key: nothing the browser can do.
        return 503, "UNAVAILABLE", None
    if isinstance(exc, ServerError) and exc.retry_after is not None:
        return 503, "UNAVAILABLE", exc.retry_after
    if isinstance(exc, CohrtTimeoutError):
        return 504, "DEADLINE_EXCEEDED", None
    if getattr(exc, "status_code", None) == 503:
        return 503, "UNAVAILABLE", None
    return 502, "BAD_GATEWAY", None


def browser_message(exc: CohrtError, code: int) -> str:
    """The one line a browser reads for ``exc`` answered with ``code``.

    A 4xx keeps the error's own message (it says what to send instead). A
    5xx says only what happened, except :class:`NotConfiguredError`, whose
    message is this library's own advice to the app's operator.

    :param exc: the error.
    :param code: the status :func:`status_for` chose.
    """
    if code < 500 or isinstance(exc, NotConfiguredError):
        return exc.message
    return BROWSER_MESSAGES.get(code, BROWSER_MESSAGES[502])


def error_answer(exc: CohrtError) -> Answer:
    """The JSON error answer for ``exc``; a 5xx is logged with its detail.

    :param exc: the error; its message is already free of keys and tokens.
    """
    code, status, retry_after = status_for(exc)
    if code >= 500:
        log.warning("realtime route failed (%s): %s", type(exc).__name__, exc)
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return private(error_body(code, browser_message(exc, code), status), code, headers)
