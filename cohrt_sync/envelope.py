"""The JSON error envelope, ``{"error": {"code", "message", "status"}}``, as a plain dict.

One rendering for everyone who answers HTTP errors: the local server (which
wraps it in an aiohttp response, :mod:`cohrt_sync.server.errors`) and the web
core behind the Flask and Django routes (:mod:`cohrt_sync.web.errors`). It
imports nothing beyond the standard library, so neither pulls the other's
framework in.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = ["STATUS_NAMES", "error_body"]

#: HTTP status -> the envelope's ``status`` name where the answer gives none (DESIGN §2).
STATUS_NAMES: Dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "FAILED_PRECONDITION",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    409: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    426: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    431: "INVALID_ARGUMENT",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error_body(code: int, message: str, status: Optional[str] = None) -> Dict[str, Any]:
    """``{"error": {"code", "message", "status"}}`` for one failure.

    :param code: the HTTP status.
    :param message: one line for the caller; never a key or a token.
    :param status: the status name; :data:`STATUS_NAMES` (or ``UNKNOWN``) when None.
    """
    return {
        "error": {
            "code": code,
            "message": message,
            "status": status or STATUS_NAMES.get(code, "UNKNOWN"),
        }
    }
