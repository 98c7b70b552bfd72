"""The server's error type and the Google-style JSON envelope it renders to."""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from ._json import dumps

#: HTTP status → the envelope's ``status`` name (DESIGN §2).
STATUS_NAMES = {
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


class ApiError(Exception):
    """An error a handler answers with; rendered once, by the middleware.

    :param code: HTTP status.
    :param message: human-readable text; never contains a key or token.
    :param status: override of the envelope's status name.
    :param retry_after: seconds, sent as ``Retry-After`` (429/503).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: Optional[str] = None,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.retry_after = retry_after

    def response(self) -> web.Response:
        """Render as the JSON envelope with the right status and headers."""
        return error_response(self.code, self.message, self.status, self.retry_after)


def error_response(
    code: int,
    message: str,
    status: Optional[str] = None,
    retry_after: Optional[int] = None,
) -> web.Response:
    """Build ``{"error": {"code", "message", "status"}}`` as a response."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "status": status or STATUS_NAMES.get(code, "UNKNOWN"),
        }
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(
        status=code, text=dumps(body), content_type="application/json", headers=headers
    )
