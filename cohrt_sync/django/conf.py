"""The Django app's settings and state: the hooks, the lazily made client, the web core's routes.

Settings come from ``django.conf.settings``; ``COHRT_KEY`` and
``COHRT_BASE_URL`` fall back to the environment (then to the client's own
``COHESIVITY_*`` variables). The state is made on first use and made again
when a ``COHRT_*`` setting changes (``override_settings`` in tests); the
process's client is then closed and made again from the new settings, with
the plugins registered on the old one.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.module_loading import import_string

from ..client import Client
from ..models import User
from ..web import (
    BUDGET_DEFAULTS,
    LoadedUser,
    ProcessClient,
    RealtimeRoutes,
    budget_from_setting,
    make_web_client,
    timeout_from_setting,
)
from ..web.policy import Authorize

__all__ = [
    "HOW_TO_SET_POLICY",
    "DjangoState",
    "default_user",
    "hook",
    "setting",
    "state",
]

#: How the 403 without a policy tells a Django project to set one.
HOW_TO_SET_POLICY = (
    "set COHRT_AUTHORIZE in settings to the dotted path of a function "
    "(request, user, channel, action) -> bool; docs/django.md, Channel policy"
)

#: Defaults of the settings that have one.
DEFAULTS = {
    "COHRT_URL_PREFIX": "/realtime",
    "COHRT_TOKEN_TTL": 300,
    "COHRT_TIMEOUT": None,  # cohrt_sync.web.DEFAULT_TIMEOUT
    "COHRT_CLIENT_OPTIONS": {},
    "COHRT_USER_TOKEN_BUDGET": BUDGET_DEFAULTS,
}

#: ``COHRT_USER``: ``(request) -> (user_id, name)``, a bare id, a ``User``, or None.
UserHook = Callable[[HttpRequest], LoadedUser]
#: ``COHRT_AUTHORIZE``: ``(request, user, channel, action) -> bool``.
AuthorizeHook = Callable[[HttpRequest, User, str, str], bool]


def setting(name: str) -> Any:
    """The value of setting ``name``, its default when unset.

    ``COHRT_KEY`` and ``COHRT_BASE_URL`` fall back to the environment variable
    of the same name.

    :param name: a ``COHRT_*`` setting.
    """
    value = getattr(settings, name, None)
    if value is None and name in ("COHRT_KEY", "COHRT_BASE_URL"):
        value = os.environ.get(name) or None
    if value is None:
        value = DEFAULTS.get(name)
    return value


def hook(name: str) -> Optional[Callable[..., Any]]:
    """The function a ``COHRT_USER`` or ``COHRT_AUTHORIZE`` setting names, or None when unset.

    :param name: the setting.
    :raises ImproperlyConfigured: the setting is neither a dotted path that
        imports nor a callable.
    """
    value = getattr(settings, name, None)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            found = import_string(value)
        except ImportError as e:
            raise ImproperlyConfigured(
                f"{name} = {value!r} does not import ({e}): give the dotted path of a function"
            ) from None
    else:
        found = value
    if not callable(found):
        raise ImproperlyConfigured(f"{name} must name a function, not {type(found).__name__}")
    return found  # type: ignore[no-any-return]


def default_user(request: HttpRequest) -> LoadedUser:
    """``request.user`` when authenticated: ``(str(pk), full name or username)``; else None.

    :param request: the request (``AuthenticationMiddleware`` sets ``user``).
    """
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    name = (full or "").strip() or user.get_username()
    return (str(user.pk), str(name) if name else None)


def _make_client() -> Client:
    return make_web_client(
        setting("COHRT_KEY"),
        setting("COHRT_BASE_URL"),
        timeout=timeout_from_setting(setting("COHRT_TIMEOUT")),
        options=setting("COHRT_CLIENT_OPTIONS"),
        where="settings.py",
    )


#: The process's client: one holder for every state, so what was registered
#: on the client outlives a settings change (and a fork).
_clients = ProcessClient(_make_client)


class DjangoState:
    """The project's realtime state: the client (one per process) and the routes.

    :raises ValueError: ``COHRT_USER_TOKEN_BUDGET`` or ``COHRT_TIMEOUT`` is not valid.
    :raises ImproperlyConfigured: ``COHRT_USER`` or ``COHRT_AUTHORIZE`` does not import.
    """

    def __init__(self) -> None:
        timeout_from_setting(setting("COHRT_TIMEOUT"))  # refuse a bad one now, not per request
        ttl = int(setting("COHRT_TOKEN_TTL"))
        self.clients = _clients
        self.routes = RealtimeRoutes(
            self.clients.get,
            token_ttl=lambda: ttl,
            mint_budget=budget_from_setting(setting("COHRT_USER_TOKEN_BUDGET")),
            how_to_set_policy=HOW_TO_SET_POLICY,
        )
        self._user: UserHook = hook("COHRT_USER") or default_user
        self._authorize: Optional[AuthorizeHook] = hook("COHRT_AUTHORIZE")

    def user_of(self, request: HttpRequest) -> Callable[[], LoadedUser]:
        """The user hook, bound to ``request``.

        :param request: the request.
        """
        return lambda: self._user(request)

    def policy(self, request: HttpRequest) -> Optional[Authorize]:
        """The ``COHRT_AUTHORIZE`` hook bound to ``request``, or None when unset.

        :param request: the request.
        """
        authorize = self._authorize
        if authorize is None:
            return None
        return lambda user, channel, action: bool(authorize(request, user, channel, action))


_lock = threading.Lock()
_state: Optional[DjangoState] = None


def state() -> DjangoState:
    """The project's :class:`DjangoState`, made on first use."""
    global _state
    with _lock:
        if _state is None:
            _state = DjangoState()
        return _state


def reset() -> None:
    """Close this process's client and forget the state (both made again on next use)."""
    global _state
    with _lock:
        _state = None
    _clients.close()


def setting_changed_receiver(setting: str, **kwargs: Any) -> None:
    """Django's ``setting_changed`` signal: a ``COHRT_*`` change rebuilds the state.

    :param setting: the setting's name.
    """
    if setting.startswith("COHRT_"):
        reset()
