"""A web core :class:`~cohrt_sync.web.Answer` as a Django response."""

from __future__ import annotations

from django.http import JsonResponse

from ..web import Answer

__all__ = ["to_response"]


def to_response(answer: Answer) -> JsonResponse:
    """The JSON response for ``answer``: its status, body and headers.

    :param answer: what a route of the web core answered.
    """
    response = JsonResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response
