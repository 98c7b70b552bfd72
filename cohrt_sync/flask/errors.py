"""A :class:`~cohrt_sync.CohrtError` as the routes' JSON error, for an app's own views too.

The table of statuses, the browser-safe messages and the error types
(:class:`~cohrt_sync.web.RouteError`, :class:`~cohrt_sync.web.NotConfiguredError`,
also importable from :mod:`cohrt_sync.flask`) are the web core's
(:mod:`cohrt_sync.web.errors`); this renders them as a Flask response.
"""

from __future__ import annotations

from flask import Response

from ..errors import CohrtError
from ..web.errors import error_answer
from .answers import to_response

__all__ = ["error_response"]


def error_response(exc: CohrtError) -> Response:
    """The JSON error answer for ``exc`` (also usable from an app's own views).

    A failure between this server and the API (a 5xx) reads as one short
    line; its detail is logged (``cohrt_sync.web``).

    :param exc: the error; its message is already free of keys and tokens.
    """
    return to_response(error_answer(exc))
