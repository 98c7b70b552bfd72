"""What wraps every request: the JSON error envelope for any failure, and the
access log with keys and tokens taken out."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from .core import CORE
from .errors import ApiError, error_response
from .logfilter import learn_keys, redact

log = logging.getLogger("cohrt_sync.server")


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure, ours or aiohttp's, as the JSON error envelope."""
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body too large (max {request.client_max_size} bytes)")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 404:
            return error_response(404, f"no such endpoint: {request.method} {request.path}")
        if e.status == 405:
            response = error_response(405, f"method {request.method} not allowed on {request.path}")
            # RFC 9110: a 405 says which methods the resource does allow.
            allowed = getattr(e, "allowed_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        return error_response(e.status, e.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines with keys and tokens taken out of the path and query
    (parameter names compared percent-decoded, as the server reads them)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path_qs = request.path_qs
        try:
            app: Optional[web.Application] = request.app  # type: ignore[attr-defined]
        except (AttributeError, AssertionError):  # a request aiohttp refused has no app
            app = None
        if app is not None and CORE in app:
            core = app[CORE]
            learn_keys(path_qs, lambda k: core.state.by_key(k) is not None, core.redactor)
        self.logger.info(
            '%s "%s %s" %d %.1fms',
            request.remote,
            request.method,
            redact(path_qs),
            response.status,
            time * 1000,
        )


__all__ = ["RedactingAccessLogger", "error_envelope"]
