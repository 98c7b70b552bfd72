"""The realtime blueprint: token, history and publish routes, and the browser client file.

Each route loads the user (401 without one), checks its input (400, from
:mod:`cohrt_sync.flask.inputs`), asks the channel policy (403 when
``authorize`` says no, or when the app set none; :mod:`cohrt_sync.flask.policy`),
and talks to the realtime API with the app's key, which never reaches the
browser. The token route also spends one of the user's token budget (429).
Every :class:`~cohrt_sync.CohrtError` becomes a JSON error
(:mod:`cohrt_sync.flask.errors`). Answers are ``Cache-Control: private,
no-store``: they carry tokens or private history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory

from ..errors import CohrtError
from ..models import Message, User
from .errors import error_response
from .extension import _AppState
from .inputs import (
    bad_request,
    body_object,
    channel_arg,
    int_arg,
    publish_request,
    scoped_idempotency_key,
)

__all__ = ["blueprint"]

STATIC = Path(__file__).resolve().parent / "static"
NO_STORE = "private, no-store, max-age=0"

blueprint = Blueprint("cohrt", __name__)


@blueprint.errorhandler(CohrtError)
def _cohrt_error(exc: CohrtError) -> Response:
    return error_response(exc)


def _state() -> _AppState:
    state = current_app.extensions["cohrt"]
    assert isinstance(state, _AppState)
    return state


def _private(payload: Dict[str, Any]) -> Response:
    resp = jsonify(payload)
    resp.headers["Cache-Control"] = NO_STORE
    return resp


def _body() -> Dict[str, Any]:
    # Only application/json is read: a cross-site form cannot send it
    # without a CORS preflight, which these routes never grant.
    try:
        parsed = request.get_json(silent=True)
    except RecursionError:
        raise bad_request("the JSON body is nested too deeply") from None
    return body_object(parsed)


def _user_json(user: User) -> Dict[str, Optional[str]]:
    return {"id": user.id, "name": user.name}


def message_json(msg: Message) -> Dict[str, Any]:
    """One history item, in the edge API's shape.

    :param msg: the message.
    """
    return {
        "id": msg.id,
        "channel": msg.channel,
        "event": msg.event,
        "action": msg.action,
        "data": msg.data,
        "created_at_ms": msg.created_at_ms,
    }


@blueprint.post("/token")
def token() -> Response:
    """Mint a connection token for the logged-in user: ``{token, url, expires_in, user}``."""
    state = _state()
    user = state.ext.current_user()
    channel = channel_arg(_body().get("channel"))
    state.ext.check(user, channel, "subscribe")
    if state.mint_budget is not None:
        # Before the tenant's shared bucket: one user must not empty it for all.
        state.mint_budget.take(user.id)
    ttl = int(current_app.config["COHRT_TOKEN_TTL"])
    tok = state.client().mint_token(user.id, name=user.name, ttl=ttl)
    return _private(
        {
            "token": tok.token,
            "url": tok.ws_url(channel),
            "expires_in": tok.expires_in,
            "user": _user_json(user),
        }
    )


def _last_id(state: _AppState, channel: str) -> int:
    # Where the browser's catch-up starts when live frames carry no id: the
    # channel's highest id, taken after its socket subscribed (docs/client.md).
    client = state.client()
    try:
        rows = client.sql(
            "SELECT COALESCE(MAX(id), 0) AS last_id FROM realtime_messages WHERE channel = ?",
            params=[channel],
        )
        return int((rows[0].get("last_id") if rows else 0) or 0)
    except CohrtError:
        last = 0
        for msg in client.iter_history(channel, after=0):
            last = msg.id or last
        return last


@blueprint.get("/history")
def history() -> Response:
    """Persisted messages with ``id > after``, oldest first: ``{"items": [...]}``.

    Query: ``channel``, ``after`` (0), ``limit`` (50, at most 100); with
    ``latest=1`` the answer also has ``last_id``, the channel's highest id.
    """
    state = _state()
    user = state.ext.current_user()
    channel = channel_arg(request.args.get("channel"))
    after = int_arg("after", request.args.get("after"), 0)
    limit = int_arg("limit", request.args.get("limit"), 50)
    state.ext.check(user, channel, "history")
    payload: Dict[str, Any] = {}
    if request.args.get("latest") in ("1", "true"):
        payload["last_id"] = _last_id(state, channel)
    msgs = state.client().history(channel, after=after, limit=limit)
    payload["items"] = [message_json(m) for m in msgs]
    return _private(payload)


@blueprint.post("/publish")
def publish() -> Response:
    """Publish for the logged-in user; ``data.sender`` is set to who they are.

    Body: ``{"channel", "data" (a JSON object), "event" ("message"),
    "persist" (true)}``. An ``Idempotency-Key`` header is passed on, scoped
    to the user, so a browser may retry the same publish safely.
    """
    state = _state()
    user = state.ext.current_user()
    req = publish_request(_body())
    key = scoped_idempotency_key(user.id, request.headers.get("Idempotency-Key"))
    state.ext.check(user, req.channel, "publish")
    # Whatever the browser put there, the sender is the verified user.
    stamped = dict(req.data, sender=_user_json(user))
    ack = state.client().publish(
        req.channel, stamped, event=req.event, persist=req.persist, idempotency_key=key
    )
    return _private(
        {
            "channel": ack.channel,
            "event": ack.event,
            "action": ack.action,
            "created_at_ms": ack.created_at_ms,
            "id": ack.id,
            "data": stamped,
        }
    )


@blueprint.get('/<any("cohrt-sync.js", "cohrt-sync-delivery.js"):name>')
def script(name: str) -> Response:
    """The browser client, an ES module, and the delivery module it imports (docs/flask.md)."""
    return send_from_directory(STATIC, name, mimetype="text/javascript", max_age=300)
