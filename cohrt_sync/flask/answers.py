"""A web core :class:`~cohrt_sync.web.Answer` as a Flask response."""

from __future__ import annotations

from flask import Response, jsonify

from ..web import Answer

__all__ = ["to_response"]


def to_response(answer: Answer) -> Response:
    """The JSON response for ``answer``: its status, body and headers.

    :param answer: what a route of the web core answered.
    """
    resp = jsonify(answer.body)
    resp.status_code = answer.status
    resp.headers.update(answer.headers)
    return resp
