"""Realtime in a Django project: the routes, the browser client, checks and a bot command.

Needs the ``django`` extra. In ``settings.py``::

    INSTALLED_APPS = [..., "cohrt_sync.django"]
    COHRT_KEY = env("COHESIVITY_KEY")                 # or the COHRT_KEY variable
    COHRT_AUTHORIZE = "myapp.realtime.may_use"        # (request, user, channel, action) -> bool

and in ``urls.py``::

    urlpatterns = [path("realtime/", include("cohrt_sync.django.urls")), ...]

The routes and their JSON are those of the Flask blueprint (the web core,
:mod:`cohrt_sync.web`); pages import ``/realtime/cohrt-sync.js``. The user
is ``request.user`` (``COHRT_USER`` replaces it); without
``COHRT_AUTHORIZE`` every channel is refused. ``manage.py cohrt_listen
CHANNEL --plugin NAME`` runs a bot; :func:`client` is this process's
client for your own views. docs/django.md is the guide.
"""

from __future__ import annotations

from ..client import Client
from .conf import reset, state

__all__ = ["client", "close"]


def client() -> Client:
    """This process's :class:`~cohrt_sync.Client`, made on first use from the settings.

    Shared by every thread of the process; a forked worker makes its own.
    Its HTTP calls give up after ``COHRT_TIMEOUT``, as the routes' do.

    :raises NotConfiguredError: no ``COHRT_KEY`` in the settings or the environment.
    """
    return state().clients.get()


def close() -> None:
    """Close this process's client now (it is also closed at interpreter exit)."""
    reset()
