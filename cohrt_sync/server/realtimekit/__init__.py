"""RealtimeKit REST emulation under ``/edge/realtimekit/``.

The hosted API proxies ``/edge/realtimekit/*`` to Cloudflare RealtimeKit's REST
API (``/accounts/{account}/realtime/kit/{app_id}/*``) for the tenant. Media
cannot run here, but the REST surface can: meetings, participants with real
signed tokens, presets, paging, and the eventual consistency the spec warns
about (a new meeting answers ``ResourceNotFound`` for ``rtk_delay_ms``).

Two error envelopes, as on the hosted API:

* proxy-level failures (credentials, provisioning, rate limits, a paused
  tenant) raise :class:`~cohrt_sync.server.errors.ApiError` and are rendered
  by the app's middleware as the Google envelope, like every edge endpoint;
* RealtimeKit's own answers (unknown ids, bad input) use Cloudflare's
  envelope ``{"success": false, "errors": [{"code", "message"}],
  "messages": [], "data": null}``.

Where things are:

* :mod:`.validation`: what requests may say (fields, limits, paging) and the
  defaults a new meeting or app gets;
* :mod:`.storage`: meetings and participants in their own SQLite file;
* :mod:`.service`: the handlers, from authentication to the answer;
* :mod:`.envelope`: Cloudflare's success and error bodies;
* here: :func:`install`, the route table that puts them on the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Tuple

from aiohttp import web

from .envelope import CODE_NO_ROUTE, Handler, RtkError, cloudflare_errors
from .service import PREFIX, RealtimeKitService
from .storage import RtkStore
from .validation import PRESET_NAMES, presets

if TYPE_CHECKING:
    from ..core import Core

SERVICE: web.AppKey[RealtimeKitService] = web.AppKey("realtimekit", RealtimeKitService)


def install(app: web.Application, core: Core) -> None:
    """Add the RealtimeKit routes to ``app`` and hook its lifecycle.

    :param app: the server's application (routes are added after the core ones).
    :param core: the server's shared state.
    """
    svc = RealtimeKitService(core)
    app[SERVICE] = svc
    m = "/meetings/{meeting_id}"
    p = m + "/participants/{participant_id}"
    routes: List[Tuple[str, str, Handler]] = [
        ("GET", "/meetings", svc.list_meetings),
        ("POST", "/meetings", svc.create_meeting),
        ("GET", m, svc.get_meeting),
        ("PATCH", m, svc.update_meeting),
        ("PUT", m, svc.update_meeting),
        ("GET", m + "/participants", svc.list_participants),
        ("POST", m + "/participants", svc.add_participant),
        ("GET", p, svc.get_participant),
        ("PATCH", p, svc.edit_participant),
        ("DELETE", p, svc.delete_participant),
        ("POST", p + "/token", svc.refresh_token),
        ("GET", "/presets", svc.list_presets),
        ("POST", "/_local/verify-token", svc.verify),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, cloudflare_errors(handler))
    # Last, so that it only sees what no route above serves (wrong method included);
    # [\s\S], not ".", so that a path with a newline in it is caught too.
    app.router.add_route("*", PREFIX + "{tail:(/[\\s\\S]*)?}", cloudflare_errors(svc.no_route))
    core.on_realtime_deleted.append(svc.on_realtime_deleted)

    async def on_cleanup(app: web.Application) -> None:
        await svc.close()

    app.on_cleanup.append(on_cleanup)


__all__ = [
    "CODE_NO_ROUTE",
    "PRESET_NAMES",
    "SERVICE",
    "RealtimeKitService",
    "RtkError",
    "RtkStore",
    "install",
    "presets",
]
