"""The Flask app the real servers run in tests/servers (``site_flask:app``, or ``create_app``).

What an app does at start-up, in the process that imports it (the master
under ``gunicorn --preload`` and uWSGI's default mode, which then fork the
workers): it registers a plugin on ``cohrt.client`` and calls
``cohrt_sync.close_on_sigterm()``. ``GET /stats`` answers, in whichever
worker serves it, whether the plugin is still registered there and what it
counted. Each process that built the app prints ``site ready in <pid>``,
and appends ``exit <pid>`` to ``$SITE_EXITS`` from ``atexit``, so a test
knows which processes are up and which exited cleanly.

``$SITE_SUBSCRIBE=CHANNEL`` also subscribes the process that imports the app
to CHANNEL (a bot at import: the wrong way to run one, used to show that a
forked worker leaves its parent's socket alone, or that a single-process
server exits cleanly); its drops and its close are appended to
``$SITE_EVENTS``. ``$SITE_NO_CLOSE_ON_SIGTERM=1`` leaves SIGTERM alone.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Dict

from flask import Flask, request, session
from publish_counter import PublishCounter

import cohrt_sync
from cohrt_sync.flask import Cohrt


def _append(path_var: str, line: str) -> None:
    path = os.environ.get(path_var)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class Journal:
    """Writes what happens to the channel subscribed at import to ``$SITE_EVENTS``."""

    @cohrt_sync.hookimpl
    def on_disconnected(self, channel: Any, reason: str) -> None:
        _append("SITE_EVENTS", f"disconnected {os.getpid()} {reason}")

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        _append("SITE_EVENTS", f"closed {os.getpid()}")


def _mark_exit() -> None:
    _append("SITE_EXITS", f"exit {os.getpid()}")


counter = PublishCounter()
cohrt = Cohrt()


def create_app() -> Flask:
    """The app: login by query string, open channels, the realtime routes, ``/stats``."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="site-flask-test", COHRT_TIMEOUT=5)
    cohrt.init_app(app)

    @cohrt.user_loader
    def current_user() -> Any:
        return (session["uid"], session.get("name")) if "uid" in session else None

    @cohrt.authorize
    def may_use(user: Any, channel: str, action: str) -> bool:
        return True

    @app.post("/login")
    def login() -> str:
        session["uid"], session["name"] = request.args["uid"], request.args.get("name")
        return "ok"

    @app.get("/stats")
    def stats() -> Dict[str, Any]:
        client = cohrt.client
        return {
            "pid": os.getpid(),
            "registered": client.plugin_manager.is_registered(counter),
            "published": counter.published,
        }

    with app.app_context():
        cohrt.client.register(counter)
        channel = os.environ.get("SITE_SUBSCRIBE")
        if channel:
            cohrt.client.register(Journal())
            cohrt.client.subscribe(channel, user_id=f"site-{os.getpid()}")
    if not os.environ.get("SITE_NO_CLOSE_ON_SIGTERM"):
        cohrt_sync.close_on_sigterm()
    atexit.register(_mark_exit)
    print(f"site ready in {os.getpid()}", flush=True)
    return app


app = create_app()
