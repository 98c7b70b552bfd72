"""A small chat on ``cohrt_sync.flask``: rooms, presence, typing, scrollback and private DMs.

Run the local server, then the app (README.md in this folder)::

    cohrt-sync serve --key dev-key --provision
    COHRT_KEY=dev-key python examples/flask_chat/app.py

Security (docs/flask.md): a connection token opens any channel of the
tenant, so DM and inbox channels are named with :func:`cohrt_sync.private_channel`
(unguessable without ``SECRET_KEY``), and ``authorize`` lets the routes
serve a private channel's history and publishes only to its members. Every
POST carries the session's CSRF token and the session cookie is
``SameSite=Lax``, so no other site can act for a logged-in user; pages that
name private channels are never cached.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from typing import Any, Optional, Tuple

from flask import Flask, Response, jsonify, redirect, render_template, request, session, url_for

import cohrt_sync
from cohrt_sync.flask import Cohrt, error_response

ROOMS = ("lobby", "random", "help")
_NAME = re.compile(r"^[A-Za-z0-9 _.-]{1,32}$")

cohrt = Cohrt()


def slug(name: str) -> str:
    """The user id a display name logs in as (one id per name, for the demo)."""
    return re.sub(r"[^a-z0-9]+", "", name.lower()) or "user"


def dm_channel(secret: str, a: str, b: str) -> str:
    """The DM channel of users ``a`` and ``b``: members readable, the rest keyed.

    ``dm-<low>-<high>:<HMAC>``: ``authorize`` checks membership from the name
    and that the HMAC is the server's, so nobody can make up a channel that
    names them; nobody without the secret can compute the name to listen in.
    """
    low, high = sorted((a, b))
    return cohrt_sync.private_channel(secret, "dm", low, high, prefix=f"dm-{low}-{high}")


def inbox_channel(secret: str, uid: str) -> str:
    """Where a user hears about new DMs: private to them."""
    return cohrt_sync.private_channel(secret, "inbox", uid, prefix=f"inbox-{uid}")


def create_app(config: Optional[dict] = None) -> Flask:
    """The app factory."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("CHAT_SECRET_KEY") or secrets.token_hex(32),
        COHRT_BASE_URL=os.environ.get("COHRT_BASE_URL", "http://127.0.0.1:8787"),
        # Browsers leave the session cookie off cross-site POSTs.
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.update(config or {})
    cohrt.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token

    def secret() -> str:
        return str(app.config["SECRET_KEY"])

    @app.before_request
    def check_csrf() -> Any:
        # Every POST, the realtime routes' included, proves it comes from
        # one of this app's pages: a form field or the X-CSRF-Token header.
        if request.method != "POST":
            return None
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
        expected = session.get("csrf")
        if not expected or not hmac.compare_digest(sent.encode(), str(expected).encode()):
            message = "missing or stale CSRF token: reload the page and try again"
            error = {"code": 403, "message": message, "status": "PERMISSION_DENIED"}
            return jsonify(error=error), 403
        return None

    @app.after_request
    def no_store(resp: Response) -> Response:
        # Pages and answers name the user's private channels (inbox, DMs).
        if request.endpoint != "static":
            resp.headers.setdefault("Cache-Control", "private, no-store, max-age=0")
        return resp

    @app.get("/")
    def index() -> Any:
        if "uid" not in session:
            return render_template("login.html")
        room = request.args.get("room", ROOMS[0])
        if room not in ROOMS:
            room = ROOMS[0]
        return render_template(
            "chat.html",
            rooms=ROOMS,
            room=room,
            me={"id": session["uid"], "name": session["name"]},
            inbox=inbox_channel(secret(), session["uid"]),
        )

    @app.post("/login")
    def login() -> Any:
        name = (request.form.get("name") or "").strip()
        if not _NAME.match(name):
            error = "1 to 32 letters, digits, spaces, _ . -"
            return render_template("login.html", error=error), 400
        session.clear()  # a new session, with a new CSRF token
        session["uid"], session["name"] = slug(name), name
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("index"))

    @app.post("/dm/<other>")
    def open_dm(other: str) -> Any:
        if "uid" not in session:
            error = {"code": 401, "message": "not logged in", "status": "UNAUTHENTICATED"}
            return jsonify(error=error), 401
        me = session["uid"]
        if other == me or not re.fullmatch(r"[a-z0-9]{1,32}", other):
            error = {"code": 400, "message": "pick another user", "status": "INVALID_ARGUMENT"}
            return jsonify(error=error), 400
        channel = dm_channel(secret(), me, other)
        # Tell the other user, on their private inbox, from the server:
        # the sender is the session's user, not something a browser wrote.
        try:
            cohrt.client.publish(
                inbox_channel(secret(), other),
                {"channel": channel, "sender": {"id": me, "name": session["name"]}},
                event="dm_request",
            )
        except cohrt_sync.CohrtError as e:
            return error_response(e)
        return jsonify(channel=channel)

    return app


def csrf_token() -> str:
    """This session's CSRF token, made on first use; every POST must carry it."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


@cohrt.user_loader
def current_user() -> Optional[Tuple[str, str]]:
    """Who is logged in: the session's id and name."""
    if "uid" not in session:
        return None
    return session["uid"], session["name"]


@cohrt.authorize
def authorize(user: cohrt_sync.User, channel: str, action: str) -> bool:
    """Rooms are open to everyone; a DM or an inbox only to its members."""
    from flask import current_app

    key = str(current_app.config["SECRET_KEY"])
    if channel.startswith("room:"):
        return channel[len("room:"):] in ROOMS
    if channel.startswith("dm-"):
        members = channel.split(":", 1)[0].split("-")[1:]
        if len(members) != 2 or user.id not in members:
            return False
        return hmac.compare_digest(channel, dm_channel(key, *members))
    if channel.startswith("inbox-"):
        # Only its owner listens; nobody publishes there from a browser.
        return action != "publish" and hmac.compare_digest(channel, inbox_channel(key, user.id))
    return False


if __name__ == "__main__":
    create_app().run(port=int(os.environ.get("PORT", "5000")), threaded=True)
