"""The realtime routes: ``path("realtime/", include("cohrt_sync.django.urls"))``.

``POST token``, ``GET history``, ``POST publish`` and the browser client
(``cohrt-sync.js`` and ``cohrt-sync-delivery.js``), named in the
``cohrt_sync`` namespace (``reverse("cohrt_sync:token")``).
"""

from __future__ import annotations

from typing import Any, List

from django.urls import path

from ..web.scripts import SCRIPTS
from . import views

app_name = "cohrt_sync"

urlpatterns: List[Any] = [
    path("token", views.token, name="token"),
    path("history", views.history, name="history"),
    path("publish", views.publish, name="publish"),
    *(path(name, views.script, {"name": name}, name=name) for name in SCRIPTS),
]
