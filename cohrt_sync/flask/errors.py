"""Every failure of the realtime routes as one JSON answer with the right HTTP status.

The envelope is the API's own (``{"error": {"code", "message", "status"}}``,
docs/server.md), so the browser client reads one shape from the routes and
the edge alike. The table is :func:`status_for`: what the browser did wrong
keeps its 4xx, a limit keeps its 429 and ``Retry-After``, and what went
wrong between this server and the realtime API (its key refused, the API
down or unreachable) becomes 502/503/504: the browser cannot fix those and
must not take them for its own login failing.
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Tuple

from flask import Response, jsonify

from ..errors import (
    AuthError,
    BadRequestError,
    CohrtError,
    CohrtTimeoutError,
    NotProvisionedError,
    RateLimitedError,
    ServerError,
)
from .policy import RouteError

__all__ = ["NotConfiguredError", "RouteError", "error_response", "status_for"]

log = logging.getLogger("cohrt_sync.flask")


class NotConfiguredError(CohrtError):
    """The app has no application key: set ``COHRT_KEY`` (config or environment)."""


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


def error_response(exc: CohrtError) -> Response:
    """The JSON error answer for ``exc`` (also usable from an app's own views).

    :param exc: the error; its message is already free of keys and tokens.
    """
    code, status, retry_after = status_for(exc)
    if code >= 500:
        log.warning("realtime route failed (%s): %s", type(exc).__name__, exc)
    resp = jsonify(error={"code": code, "message": exc.message, "status": status})
    resp.status_code = code
    resp.headers["Cache-Control"] = "private, no-store, max-age=0"
    if retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return resp
