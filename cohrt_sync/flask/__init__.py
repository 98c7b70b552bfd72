"""Realtime in a Flask app: the :class:`Cohrt` extension, its routes and the browser client.

Needs the ``flask`` extra (from a checkout: ``python -m pip install -e '.[flask]'``)::

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
imports ``/realtime/cohrt-sync.js``. Their logic is the framework-neutral
:mod:`cohrt_sync.web`, shared with :mod:`cohrt_sync.django`. docs/flask.md
is the guide, including the channel policy and the security model.
"""

from __future__ import annotations

from ..web.errors import NotConfiguredError, RouteError
from .errors import error_response
from .extension import Cohrt

__all__ = ["Cohrt", "NotConfiguredError", "RouteError", "error_response"]
