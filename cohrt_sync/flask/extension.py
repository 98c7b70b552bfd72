"""The :class:`Cohrt` Flask extension: settings, the lazy per-process client, the callbacks.

The usual extension shape: ``Cohrt(app)`` or ``Cohrt()`` then
``init_app(app)`` in a factory; per-app state lives in
``app.extensions["cohrt"]``, never on the extension object, so one
extension serves many apps. Nothing touches the network or needs a key
until a route (or the app) first uses :attr:`Cohrt.client`.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from typing import Any, Callable, Dict, Optional, Tuple, Union

from flask import Flask, current_app

from ..client import Client
from ..errors import BadRequestError
from ..models import User, check_user_id
from .errors import NotConfiguredError, RouteError
from .policy import BUDGET_DEFAULTS, Authorize, MintBudget, budget_from_setting, check_policy

__all__ = ["Authorize", "Cohrt", "NotConfiguredError"]

log = logging.getLogger("cohrt_sync.flask")

#: ``user_loader`` returns ``(user_id, name)``, a bare id, a ``User``, or None.
LoadedUser = Union[None, str, int, Tuple[Union[str, int], Optional[str]], User]
UserLoader = Callable[[], LoadedUser]

#: Settings read from ``app.config`` and their defaults.
DEFAULTS: Dict[str, Any] = {
    "COHRT_URL_PREFIX": "/realtime",
    "COHRT_TOKEN_TTL": 300,
    "COHRT_CLIENT_OPTIONS": {},
    "COHRT_USER_TOKEN_BUDGET": dict(BUDGET_DEFAULTS),
}

#: How the 403 without a policy tells a Flask app to set one.
HOW_TO_SET_POLICY = "set one with @cohrt.authorize or Cohrt(app, authorize=...)"


class _AppState:
    """One app's realtime state: its client, made on first use, once per process."""

    def __init__(self, ext: Cohrt, app: Flask) -> None:
        self.ext = ext
        self.app = app
        self._lock = threading.Lock()
        self._client: Optional[Client] = None
        self._pid = 0
        #: Each user's allowance of connection tokens (None: no per-user limit).
        self.mint_budget: Optional[MintBudget] = budget_from_setting(
            app.config.get("COHRT_USER_TOKEN_BUDGET")
        )
        self.warned_no_policy = False

    def client(self) -> Client:
        with self._lock:
            # A forked worker (gunicorn --preload) must not share the parent's
            # sockets or threads: it builds its own client instead.
            if self._client is None or self._client.closed or self._pid != os.getpid():
                self._client = self._make_client()
                self._pid = os.getpid()
            return self._client

    def _make_client(self) -> Client:
        cfg = self.app.config
        key = cfg.get("COHRT_KEY") or os.environ.get("COHRT_KEY")
        base_url = cfg.get("COHRT_BASE_URL") or os.environ.get("COHRT_BASE_URL")
        # Installed plugins stay out unless COHRT_CLIENT_OPTIONS asks (entry_points=).
        options: Dict[str, Any] = dict(cfg.get("COHRT_CLIENT_OPTIONS") or {})
        try:
            return Client(key=key, base_url=base_url, **options)
        except BadRequestError as e:
            if "no application key" in str(e):
                raise NotConfiguredError(
                    "realtime is not configured: set COHRT_KEY in the app config "
                    "or the environment"
                ) from None
            raise

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()


class Cohrt:
    """The Flask extension: registers the realtime routes and owns the app's client.

    :param app: the app to set up now; or call :meth:`init_app` later.
    :param user_loader: returns the logged-in user (see :meth:`user_loader`).
    :param authorize: decides who may use which channel (see :meth:`authorize`).

    Settings, from ``app.config`` (``COHRT_KEY`` and ``COHRT_BASE_URL`` fall
    back to the environment, then to the client's ``COHESIVITY_*`` ones):
    ``COHRT_KEY``, ``COHRT_BASE_URL``, ``COHRT_URL_PREFIX`` (``/realtime``),
    ``COHRT_TOKEN_TTL`` (300 s), ``COHRT_CLIENT_OPTIONS`` (more
    :class:`~cohrt_sync.Client` keywords), ``COHRT_USER_TOKEN_BUDGET``
    (each user's token mints, see :class:`~cohrt_sync.flask.policy.MintBudget`).

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
        """Register the routes on ``app`` and keep its state in ``app.extensions``.

        Makes no network call and needs no key.

        :param app: the Flask app.
        :raises ValueError: ``COHRT_USER_TOKEN_BUDGET`` is not a valid setting.
        """
        from .routes import blueprint  # the routes import this module

        for name, value in DEFAULTS.items():
            app.config.setdefault(name, copy.deepcopy(value))
        prefix = str(app.config["COHRT_URL_PREFIX"]).rstrip("/")
        app.extensions["cohrt"] = _AppState(self, app)
        app.register_blueprint(blueprint, url_prefix=prefix)

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

        :raises NotConfiguredError: no key in the config or the environment.
        """
        return self.state().client()

    def state(self, app: Optional[Flask] = None) -> _AppState:
        """The per-app state of ``app`` (default: the current app).

        :param app: the app; ``flask.current_app`` when None.
        :raises RuntimeError: the app was never given to :meth:`init_app`.
        """
        target = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
        state = target.extensions.get("cohrt")
        if not isinstance(state, _AppState):
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
        loaded = self._user_loader() if self._user_loader is not None else None
        if loaded is None:
            raise RouteError("not logged in", 401, "UNAUTHENTICATED")
        if isinstance(loaded, User):
            return loaded
        if isinstance(loaded, tuple):
            uid, name = loaded
            return User(id=check_user_id(uid), name=None if name is None else str(name))
        return User(id=check_user_id(loaded))

    def check(self, user: User, channel: str, action: str) -> None:
        """Raise a 403 :class:`RouteError` unless ``authorize`` allows ``action``.

        Without ``authorize`` it always raises, and logs once per app why.

        :param user: the logged-in user.
        :param channel: the channel asked for.
        :param action: ``"subscribe"``, ``"history"`` or ``"publish"``.
        """
        if self._authorize is None:
            state = self.state()
            if not state.warned_no_policy:
                state.warned_no_policy = True
                log.warning(
                    "the realtime routes refuse every channel: no authorize callback (%s)",
                    HOW_TO_SET_POLICY,
                )
        check_policy(self._authorize, user, channel, action, how_to_set=HOW_TO_SET_POLICY)
