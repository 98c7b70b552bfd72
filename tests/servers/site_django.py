"""The Django test project (tests/django_app/project) as the real servers run it.

The WSGI target is ``site_django:application``.

What a project does at start-up, in the process that imports its WSGI
module (the master under ``gunicorn --preload`` and uWSGI's default mode):
it registers a plugin on ``cohrt_sync.django.client()`` and calls
``cohrt_sync.close_on_sigterm()``. ``GET /stats``, answered here in front of
Django, says whether the plugin is still registered in the worker serving
it. Each process that built the app prints ``site ready in <pid>`` and
appends ``exit <pid>`` to ``$SITE_EXITS`` from ``atexit``, as site_flask does.
"""

from __future__ import annotations

import atexit
import json
import os
from typing import Any, Callable, Iterable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.wsgi import get_wsgi_application
from publish_counter import PublishCounter

import cohrt_sync
from cohrt_sync.django import client

django_app = get_wsgi_application()


def _mark_exit() -> None:
    path = os.environ.get("SITE_EXITS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"exit {os.getpid()}\n")


counter = PublishCounter()
client().register(counter)
cohrt_sync.close_on_sigterm()
atexit.register(_mark_exit)
print(f"site ready in {os.getpid()}", flush=True)


def application(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/stats`` here; everything else is the project's."""
    if environ.get("PATH_INFO") != "/stats":
        return django_app(environ, start_response)  # type: ignore[no-any-return]
    body = json.dumps(
        {
            "pid": os.getpid(),
            "registered": client().plugin_manager.is_registered(counter),
            "published": counter.published,
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
