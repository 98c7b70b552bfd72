"""Realtime in a Flask app: the :class:`Cohrt` extension, its routes and the browser client.

Needs the ``flask`` extra (``pip install 'cohrt-sync[flask]'``)::

    from cohrt_sync.flask import Cohrt

    cohrt = Cohrt()

    def create_app():
        app = Flask(__name__)
        cohrt.init_app(app)
        return app

    @cohrt.user_loader
    def current_user():
        return (session["uid"], session["name"]) if "uid" in session else None

    @cohrt.authorize                     # without one, every channel is refused
    def may_use(user, channel, action):  # "subscribe", "history" or "publish"
        return channel.startswith("room:")

The routes live under ``COHRT_URL_PREFIX`` (``/realtime``); the browser
imports ``/realtime/cohrt-sync.js``. docs/flask.md is the guide, including
the channel policy and the security model.
"""

from __future__ import annotations

from .errors import NotConfiguredError, RouteError, error_response
from .extension import Cohrt

__all__ = ["Cohrt", "NotConfiguredError", "RouteError", "error_response"]
