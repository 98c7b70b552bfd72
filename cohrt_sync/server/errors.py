"""The server's error type, and the JSON envelope (:mod:`cohrt_sync.envelope`) as a response."""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from ..envelope import STATUS_NAMES, error_body
from ._json import dumps

__all__ = ["STATUS_NAMES", "ApiError", "error_response"]


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
    """Build ``{"error": {"code", "message", "status"}}`` as a response.

    The envelope itself is :func:`cohrt_sync.envelope.error_body`, shared
    with the web routes; this adds the status line and ``Retry-After``.
    """
    body = error_body(code, message, status)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(
        status=code, text=dumps(body), content_type="application/json", headers=headers
    )
