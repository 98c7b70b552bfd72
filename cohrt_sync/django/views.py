"""The realtime views: the web core's token, history and publish routes, and the browser client.

Each view reads the request (the body's bytes, the query, the
``Idempotency-Key``), hands it to the project's
:class:`~cohrt_sync.web.RealtimeRoutes` with the user and policy hooks
bound to the request, and returns its :class:`~cohrt_sync.web.Answer` as a
:class:`~django.http.JsonResponse`. The POST routes pass Django's CSRF
check first (:mod:`cohrt_sync.django.csrf`).
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.request import RawPostDataException
from django.http.response import HttpResponseBase
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from ..envelope import error_body
from ..web import Body, private
from ..web.scripts import CONTENT_TYPE, MAX_AGE, script_path
from .conf import state
from .csrf import csrf_checked
from .responses import to_response

__all__ = ["history", "publish", "script", "token"]


class _TooBig(Exception):
    pass


def _body(request: HttpRequest) -> Body:
    try:
        data = request.body
    except RequestDataTooBig:
        raise _TooBig from None
    except RawPostDataException:
        # Something read the stream as a form already: it was not JSON.
        data = b""
    return Body(request.META.get("CONTENT_TYPE"), data)


def _too_big() -> HttpResponse:
    message = "the body is over DATA_UPLOAD_MAX_MEMORY_SIZE: send less"
    return to_response(private(error_body(413, message, "INVALID_ARGUMENT"), 413))


@require_POST
@csrf_checked
def token(request: HttpRequest) -> HttpResponse:
    """Mint a connection token for the logged-in user: ``{token, url, expires_in, user}``."""
    st = state()
    try:
        body = _body(request)
    except _TooBig:
        return _too_big()
    return to_response(st.routes.token(st.user_of(request), body, st.policy(request)))


@require_GET
def history(request: HttpRequest) -> HttpResponse:
    """Persisted messages, oldest first: ``{"items": [...]}``.

    Query: ``channel``; ``after`` (0) and ``limit`` (50, at most 100), or
    ``newest=N`` (1 to 100) for the newest N; ``latest=1`` adds ``last_id``.
    """
    st = state()
    return to_response(st.routes.history(st.user_of(request), request.GET, st.policy(request)))


@require_POST
@csrf_checked
def publish(request: HttpRequest) -> HttpResponse:
    """Publish for the logged-in user; ``data.sender`` is set to who they are."""
    st = state()
    try:
        body = _body(request)
    except _TooBig:
        return _too_big()
    key = request.headers.get("Idempotency-Key")
    return to_response(st.routes.publish(st.user_of(request), body, key, st.policy(request)))


@require_GET
@ensure_csrf_cookie
def script(request: HttpRequest, name: str) -> HttpResponseBase:
    """The browser client, an ES module, and the delivery module it imports (docs/django.md).

    It also sets Django's ``csrftoken`` cookie, which ``cohrt-sync.js``
    sends back in ``X-CSRFToken`` on the POST routes.
    """
    path = script_path(name)
    if path is None:
        raise Http404(name)
    response = FileResponse(path.open("rb"), content_type=CONTENT_TYPE)
    # private: the answer may carry the user's CSRF cookie.
    patch_cache_control(response, private=True, max_age=MAX_AGE)
    return response
