"""The :class:`Cohrt` Flask extension: settings, the lazy per-process client, the callbacks.

The usual extension shape: ``Cohrt(app)`` or ``Cohrt()`` then
``init_app(app)`` in a factory; per-app state lives in
``app.extensions["cohrt"]`` (:class:`~cohrt_sync.flask.state.AppState`),
never on the extension object, so one extension serves many apps. Nothing
touches the network or needs a key until a route (or the app) first uses
:attr:`Cohrt.client`.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Optional

from flask import Flask, current_app

from ..client import Client
from ..models import User
from ..web import BUDGET_DEFAULTS, DEFAULT_TIMEOUT, LoadedUser, RouteError, as_user
from ..web.policy import Authorize
from .cli import cohrt_cli
from .routes import blueprint
from .state import AppState

__all__ = ["Authorize", "Cohrt", "LoadedUser", "UserLoader"]

#: ``user_loader`` returns ``(user_id, name)``, a bare id, a ``User``, or None.
UserLoader = Callable[[], LoadedUser]

#: Settings read from ``app.config`` and their defaults.
DEFAULTS: Dict[str, Any] = {
    "COHRT_URL_PREFIX": "/realtime",
    "COHRT_TOKEN_TTL": 300,
    "COHRT_TIMEOUT": DEFAULT_TIMEOUT,
    "COHRT_CLIENT_OPTIONS": {},
    "COHRT_USER_TOKEN_BUDGET": dict(BUDGET_DEFAULTS),
}


class Cohrt:
    """The Flask extension: registers the realtime routes and owns the app's client.

    :param app: the app to set up now; or call :meth:`init_app` later.
    :param user_loader: returns the logged-in user (see :meth:`user_loader`).
    :param authorize: decides who may use which channel (see :meth:`authorize`).

    Settings, from ``app.config`` (``COHRT_KEY`` and ``COHRT_BASE_URL`` fall
    back to the environment, then to the client's ``COHESIVITY_*`` ones):
    ``COHRT_KEY``, ``COHRT_BASE_URL``, ``COHRT_URL_PREFIX`` (``/realtime``),
    ``COHRT_TOKEN_TTL`` (300 s), ``COHRT_TIMEOUT`` (10 s: how long a route
    waits on the API, see :func:`cohrt_sync.web.timeout_from_setting`),
    ``COHRT_CLIENT_OPTIONS`` (more :class:`~cohrt_sync.Client` keywords),
    ``COHRT_USER_TOKEN_BUDGET`` (each user's token mints, see
    :class:`~cohrt_sync.web.MintBudget`).

    Without ``authorize`` the routes refuse every channel (403): set a
    policy to open any.
    """

    def __init__(
        self,
        app: Optional[Flask] = None,
        *,
        user_loader: Optional[UserLoader] = None,
        authorize: Optional[Authorize] = None,
    ) -> None:
        self._user_loader = user_loader
        self._authorize = authorize
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the routes and ``flask cohrt``; keep the app's state in ``app.extensions``.

        Makes no network call and needs no key. ``flask cohrt listen
        CHANNEL --plugin NAME`` runs the app's bot (:mod:`cohrt_sync.flask.cli`).

        :param app: the Flask app.
        :raises ValueError: ``COHRT_USER_TOKEN_BUDGET`` or ``COHRT_TIMEOUT``
            is not a valid setting.
        """
        for name, value in DEFAULTS.items():
            app.config.setdefault(name, copy.deepcopy(value))
        prefix = str(app.config["COHRT_URL_PREFIX"]).rstrip("/")
        app.extensions["cohrt"] = AppState(
            app.config, load_user=self._load_user, policy=self._policy
        )
        app.register_blueprint(blueprint, url_prefix=prefix)
        app.cli.add_command(cohrt_cli)

    def _load_user(self) -> LoadedUser:
        return self._user_loader() if self._user_loader is not None else None

    def _policy(self) -> Optional[Authorize]:
        return self._authorize

    def user_loader(self, fn: UserLoader) -> UserLoader:
        """Decorator: ``fn()`` returns who is logged in, or None (the routes answer 401).

        It runs inside the request, so it can read ``flask.session`` or
        ``flask_login.current_user``. Return ``(user_id, name)``, a bare id,
        or a :class:`~cohrt_sync.User`. This identity goes into the
        connection token and stamps what the user publishes.

        :param fn: the loader.
        """
        self._user_loader = fn
        return fn

    def authorize(self, fn: Authorize) -> Authorize:
        """Decorator: ``fn(user, channel, action)`` returns whether to allow it.

        ``action`` is ``"subscribe"`` (token route), ``"history"`` or
        ``"publish"``. Without one, every route refuses every channel with
        403. The routes act with the application key, which reaches every
        channel, so they grant more than a connection token does: the edge
        answers that token's own history request with 401. See
        docs/flask.md, "Channel policy".

        :param fn: the check.
        """
        self._authorize = fn
        return fn

    @property
    def client(self) -> Client:
        """The current app's :class:`~cohrt_sync.Client`, made on first use.

        One per app and process, shared by every thread; closed at exit.
        Its HTTP calls give up after ``COHRT_TIMEOUT``, as the routes' do.

        :raises NotConfiguredError: no key in the config or the environment.
        """
        return self.state().client()

    def state(self, app: Optional[Flask] = None) -> AppState:
        """The per-app state of ``app`` (default: the current app).

        :param app: the app; ``flask.current_app`` when None.
        :raises RuntimeError: the app was never given to :meth:`init_app`.
        """
        target = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
        state = target.extensions.get("cohrt")
        if not isinstance(state, AppState):
            raise RuntimeError("cohrt_sync.flask.Cohrt.init_app(app) was not called for this app")
        return state

    def close(self, app: Optional[Flask] = None) -> None:
        """Close the app's client now (it is also closed at interpreter exit).

        :param app: the app; the current app when None.
        """
        self.state(app).close()

    def current_user(self) -> User:
        """The logged-in user from :meth:`user_loader`, as a :class:`~cohrt_sync.User`.

        :raises RouteError: 401 when nobody is logged in or no loader is set.
        """
        user = as_user(self._load_user())
        if user is None:
            raise RouteError("not logged in", 401, "UNAUTHENTICATED")
        return user

    def check(self, user: User, channel: str, action: str) -> None:
        """Raise a 403 :class:`RouteError` unless ``authorize`` allows ``action``.

        Without ``authorize`` it always raises, and logs once per app why.

        :param user: the logged-in user.
        :param channel: the channel asked for.
        :param action: ``"subscribe"``, ``"history"`` or ``"publish"``.
        """
        self.state().routes.check(self._authorize, user, channel, action)
