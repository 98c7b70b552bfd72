"""Django's CSRF check on the POST routes, refusing in the routes' JSON envelope.

The check is Django's own: :class:`~django.middleware.csrf.CsrfViewMiddleware`
run around the view, as ``csrf_protect`` does, so ``CSRF_COOKIE_NAME``,
``CSRF_HEADER_NAME``, ``CSRF_TRUSTED_ORIGINS``, ``CSRF_USE_SESSIONS`` and
the test client's exemption all apply. Only the refusal differs: a browser
calling the routes reads JSON, so it gets ``{"error": ...}`` (403) instead
of the project's HTML failure page. Django logs the reason as usual
(``django.security.csrf``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from ..envelope import error_body
from ..web import private
from .responses import to_response

__all__ = ["CSRF_REFUSED", "csrf_checked"]

#: What a browser reads when the check fails.
CSRF_REFUSED = (
    "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header "
    "(cohrt-sync.js does when it can read the cookie; docs/django.md, CSRF)"
)

View = Callable[..., HttpResponseBase]


def _unused(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    return HttpResponse()


def csrf_checked(view: View) -> View:
    """``view`` behind Django's CSRF check, refused with a JSON 403.

    The result is marked ``csrf_exempt`` so the project's middleware does not
    check it a second time (and answer HTML).

    :param view: a POST route.
    """

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        middleware = CsrfViewMiddleware(_unused)
        middleware.process_request(request)
        if middleware.process_view(request, view, args, kwargs) is not None:
            return to_response(private(error_body(403, CSRF_REFUSED, "PERMISSION_DENIED"), 403))
        response = view(request, *args, **kwargs)
        return middleware.process_response(request, response)

    return csrf_exempt(checked)
