"""The realtime blueprint: the web core's token, history and publish routes, and the browser client.

Each view reads the request (the body's bytes, the query, the
``Idempotency-Key``), hands it to the app's
:class:`~cohrt_sync.web.RealtimeRoutes` with the extension's user loader
and policy, and returns its :class:`~cohrt_sync.web.Answer` as a Flask
response. What the routes check and answer is the web core's
(:mod:`cohrt_sync.web.routes`).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_from_directory

from ..errors import CohrtError
from ..web import Body
from ..web.scripts import CONTENT_TYPE, MAX_AGE, SCRIPTS, STATIC
from .answers import to_response
from .errors import error_response
from .state import AppState

__all__ = ["blueprint"]

blueprint = Blueprint("cohrt", __name__)


@blueprint.errorhandler(CohrtError)
def _cohrt_error(exc: CohrtError) -> Response:
    return error_response(exc)


def _state() -> AppState:
    state = current_app.extensions["cohrt"]
    assert isinstance(state, AppState)
    return state


def _body() -> Body:
    return Body(request.headers.get("Content-Type"), request.get_data(cache=True))


@blueprint.post("/token")
def token() -> Response:
    """Mint a connection token for the logged-in user: ``{token, url, expires_in, user}``."""
    state = _state()
    return to_response(state.routes.token(state.load_user, _body(), state.policy()))


@blueprint.get("/history")
def history() -> Response:
    """Persisted messages, oldest first: ``{"items": [...]}``.

    Query: ``channel``; ``after`` (0) and ``limit`` (50, at most 100), or
    ``newest=N`` (1 to 100) for the newest N; ``latest=1`` adds ``last_id``.
    """
    state = _state()
    return to_response(state.routes.history(state.load_user, request.args, state.policy()))


@blueprint.post("/publish")
def publish() -> Response:
    """Publish for the logged-in user; ``data.sender`` is set to who they are."""
    state = _state()
    key = request.headers.get("Idempotency-Key")
    return to_response(state.routes.publish(state.load_user, _body(), key, state.policy()))


@blueprint.get("/<any(%s):name>" % ", ".join(f'"{s}"' for s in SCRIPTS))
def script(name: str) -> Response:
    """The browser client, an ES module, and the delivery module it imports (docs/flask.md)."""
    return send_from_directory(STATIC, name, mimetype=CONTENT_TYPE, max_age=MAX_AGE)
