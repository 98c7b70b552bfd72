"""Cloudflare's envelopes: ``ok`` bodies, :class:`RtkError` answers, and the handler wrapper.

RealtimeKit answers ``{"success": true, "data": ...}`` or
``{"success": false, "errors": [{"code", "message"}], "messages": [], "data": null}``.
:func:`cloudflare_errors` turns what a handler raises into the second.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple

from aiohttp import web

from .._json import dumps

log = logging.getLogger("cohrt_sync.server.realtimekit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Cloudflare's error code for a path no route serves.
CODE_NO_ROUTE = 7000


class RtkError(Exception):
    """An answer of RealtimeKit itself, rendered in Cloudflare's error envelope.

    :param status: HTTP status.
    :param message: what went wrong, for people.
    :param code: the envelope's numeric ``code`` (the HTTP status unless given).
    """

    def __init__(self, status: int, message: str, *, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = status if code is None else code

    def response(self, headers: Optional[Mapping[str, str]] = None) -> web.Response:
        """Render as ``{"success": false, "errors": [...], "messages": [], "data": null}``."""
        body = {
            "success": False,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "data": None,
        }
        return web.Response(
            status=self.status,
            text=dumps(body),
            content_type="application/json",
            headers=headers,
        )


def not_found(kind: str, ident: str) -> RtkError:
    """The ``ResourceNotFound`` answer for an unknown (or not yet visible) id."""
    shown = ident if len(ident) <= 64 else ident[:61] + "..."
    return RtkError(404, f"ResourceNotFound: no {kind} with id {shown!r}")


def bad(message: str) -> RtkError:
    """A 400 for invalid input."""
    return RtkError(400, message)


def ok(data: Any, *, status: int = 200, paging: Optional[Dict[str, int]] = None) -> web.Response:
    """``{"success": true, "data": ...}`` (with ``paging`` for lists)."""
    body: Dict[str, Any] = {"success": True, "data": data}
    if paging is not None:
        body["paging"] = paging
    return web.Response(status=status, text=dumps(body), content_type="application/json")


class MethodNotAllowed(RtkError):
    """A 405 for a known path asked with another method; answered with ``Allow``."""

    def __init__(self, method: str, allowed: Tuple[str, ...]) -> None:
        super().__init__(405, f"method {method} is not allowed here; use {', '.join(allowed)}")
        self.allowed = allowed


def cloudflare_errors(handler: Handler) -> Handler:
    """Render :class:`RtkError` (and storage failures) in Cloudflare's envelope.

    :class:`~cohrt_sync.server.errors.ApiError` passes through to the app's
    middleware: auth, provisioning and rate refusals are the proxy's, not
    RealtimeKit's, and keep the Google envelope of every edge endpoint.
    """

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except MethodNotAllowed as e:
            return e.response({"Allow": ", ".join(e.allowed)})
        except RtkError as e:
            return e.response()
        except UnicodeError:
            # Text that is not valid UTF-8 in a path or query is bad input, not a crash.
            return bad("request contains invalid Unicode").response()
        except sqlite3.Error:
            log.exception("RealtimeKit storage failed on %s %s", request.method, request.path)
            return RtkError(500, "RealtimeKit storage failed; try again").response()

    return wrapped
