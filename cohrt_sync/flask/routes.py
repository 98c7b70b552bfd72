"""The realtime blueprint: token, history and publish routes, and the browser client file.

Each route loads the user (401 without one), asks ``authorize`` (403), and
talks to the realtime API with the app's key, which never reaches the
browser. Every :class:`~cohrt_sync.CohrtError` becomes a JSON error
(:mod:`cohrt_sync.flask.errors`). Answers are ``Cache-Control: private,
no-store``: they carry tokens or private history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory

from ..errors import CohrtError
from ..models import Message, User, check_channel
from .errors import RouteError, error_response
from .extension import _AppState

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


def _bad(message: str) -> RouteError:
    return RouteError(message, 400, "INVALID_ARGUMENT")


def _body() -> Dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _bad('send a JSON object, like {"channel": "chat:lobby"}')
    return body


def _channel(raw: Any) -> str:
    if raw is None:
        raise _bad("channel is required")
    return check_channel(raw)


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer, got {raw[:40]!r}") from None


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
    channel = _channel(_body().get("channel"))
    state.ext.check(user, channel, "subscribe")
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
    channel = _channel(request.args.get("channel"))
    state.ext.check(user, channel, "history")
    after = _int_arg("after", 0)
    limit = _int_arg("limit", 50)
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
    body = _body()
    channel = _channel(body.get("channel"))
    data = body.get("data")
    if not isinstance(data, dict):
        raise _bad('data must be a JSON object, like {"text": "hi"}')
    event = body.get("event", "message")
    persist = body.get("persist", True)
    if not isinstance(persist, bool):
        raise _bad("persist must be true or false")
    state.ext.check(user, channel, "publish")
    # Whatever the browser put there, the sender is the verified user.
    stamped = dict(data, sender=_user_json(user))
    key = request.headers.get("Idempotency-Key")
    ack = state.client().publish(
        channel,
        stamped,
        event=event,
        persist=persist,
        idempotency_key=f"u{len(user.id)}:{user.id}:{key}" if key else None,
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
