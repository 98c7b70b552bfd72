"""``manage.py check`` for the realtime app: no key, a hook that does not import, bad settings.

Registered by the app's ``ready()``. Ids: ``cohrt_sync.W001`` no key,
``W002`` no channel policy, ``W003`` the routes are not where
``COHRT_URL_PREFIX`` says; ``E001`` a hook setting that does not import,
``E002`` a setting of the wrong shape.
"""

from __future__ import annotations

from typing import Any, List, Optional

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse

from ..web import budget_from_setting, timeout_from_setting
from .conf import hook, setting

__all__ = ["check_settings", "check_urls"]


@register()
def check_settings(app_configs: Optional[Any] = None, **kwargs: Any) -> List[CheckMessage]:
    """The key, the hooks, the budget and the timeout.

    :param app_configs: the apps checked (unused: the settings are global).
    """
    found: List[CheckMessage] = []
    if not setting("COHRT_KEY"):
        found.append(
            Warning(
                "COHRT_KEY is not set: the realtime routes answer 503 until it is.",
                hint="Set COHRT_KEY in settings.py or the environment (the application key).",
                id="cohrt_sync.W001",
            )
        )
    for name in ("COHRT_USER", "COHRT_AUTHORIZE"):
        try:
            hook(name)
        except ImproperlyConfigured as e:
            found.append(Error(str(e), id="cohrt_sync.E001"))
    if not getattr(settings, "COHRT_AUTHORIZE", None):
        found.append(
            Warning(
                "COHRT_AUTHORIZE is not set: the realtime routes refuse every channel (403).",
                hint="Set COHRT_AUTHORIZE to the dotted path of a function "
                "(request, user, channel, action) -> bool (docs/django.md, Channel policy).",
                id="cohrt_sync.W002",
            )
        )
    for name, read in (
        ("COHRT_USER_TOKEN_BUDGET", budget_from_setting),
        ("COHRT_TIMEOUT", timeout_from_setting),
    ):
        try:
            read(setting(name))
        except ValueError as e:
            found.append(Error(str(e), id="cohrt_sync.E002"))
    return found


@register(Tags.urls)
def check_urls(app_configs: Optional[Any] = None, **kwargs: Any) -> List[CheckMessage]:
    """The routes are included, at ``COHRT_URL_PREFIX`` (where ``subscribe()`` looks by default).

    :param app_configs: the apps checked (unused).
    """
    prefix = str(setting("COHRT_URL_PREFIX")).rstrip("/")
    try:
        token = reverse("cohrt_sync:token")
    except NoReverseMatch:
        return [
            Warning(
                "the realtime routes are not in the URLconf.",
                hint='Add path("realtime/", include("cohrt_sync.django.urls")) to urlpatterns.',
                id="cohrt_sync.W003",
            )
        ]
    where = token[: -len("/token")]
    if where != prefix:
        return [
            Warning(
                f"the realtime routes are at {where}/ but COHRT_URL_PREFIX is {prefix!r}.",
                hint=f'Set COHRT_URL_PREFIX = "{where}", and pass prefix: "{where}" to '
                "subscribe() in your pages.",
                id="cohrt_sync.W003",
            )
        ]
    return []
