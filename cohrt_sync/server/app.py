"""The assembly: :func:`build_app` puts every route of the API, its middleware
and the core's lifecycle together into one aiohttp application."""

from __future__ import annotations

from aiohttp import web

from . import realtimekit, routes_edge, routes_provisioning, routes_socket
from .core import CORE, Core
from .middleware import error_envelope
from .openapi import PATH as OPENAPI_PATH
from .openapi import serve_document
from .tenantdb import IDEMPOTENCY_TTL_S

#: The answer header saying that ``POST /edge/realtime`` deduplicates
#: ``Idempotency-Key``, with how many seconds a key is remembered. The client
#: retries a publish that may have been applied only where a server says so
#: (cohrt_sync/_http.py reads it under the same name); on every answer, so
#: the client knows before its first publish fails.
IDEMPOTENT_PUBLISH = "Idempotent-Publish"


async def _advertise_idempotent_publish(
    request: web.BaseRequest, response: web.StreamResponse
) -> None:
    response.headers[IDEMPOTENT_PUBLISH] = str(IDEMPOTENCY_TTL_S)


def build_app(core: Core) -> web.Application:
    """The application with every route of the API, RealtimeKit's included."""
    app = web.Application(
        middlewares=[error_envelope],
        # Room for a maximal payload plus its JSON envelope.
        client_max_size=max(2 * core.config.max_payload, 1 << 20),
    )
    app[CORE] = core
    routes_provisioning.add_routes(app.router)
    routes_edge.add_routes(app.router)
    routes_socket.add_routes(app.router)
    app.router.add_get(OPENAPI_PATH, serve_document, allow_head=False)

    async def on_startup(app: web.Application) -> None:
        await core.startup()

    async def on_shutdown(app: web.Application) -> None:
        await core.shutdown()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(_advertise_idempotent_publish)
    realtimekit.install(app, core)
    return app


__all__ = ["IDEMPOTENT_PUBLISH", "build_app"]
