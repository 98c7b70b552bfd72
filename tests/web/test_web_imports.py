"""The web core imports neither framework; each adapter works with the other framework absent.

A Django app must not need Flask (before ``cohrt_sync.web``, the browser
client and the error table lived in ``cohrt_sync.flask``, so a Django app
got ``ModuleNotFoundError: No module named 'flask'``), nor a Flask app
Django, nor either the server's aiohttp. Each check runs in a child
process whose import system refuses the missing framework, as if it were
not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any, Dict

import pytest

BLOCKER = """
import sys

class NotInstalled:
    # Refuses these top-level packages, as when they are not installed.
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled(BLOCKED))
"""


def run_without(blocked: set, body: str) -> Dict[str, Any]:
    code = f"BLOCKED = {sorted(blocked)!r}\n" + BLOCKER + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_blocker_blocks() -> None:
    got = run_without(
        {"flask"},
        """
        import json
        try:
            import flask
        except ModuleNotFoundError as e:
            print(json.dumps({"error": str(e)}))
        """,
    )
    assert got == {"error": "No module named 'flask'"}


def test_web_core_and_django_work_without_flask() -> None:
    pytest.importorskip("django", reason="needs the [django] extra")
    got = run_without(
        {"flask", "aiohttp"},
        """
        import json, sys, types
        import cohrt_sync.web
        import cohrt_sync.django
        from django.conf import settings

        urls = types.ModuleType("no_flask_urls")
        from django.urls import include, path
        urls.urlpatterns = [path("realtime/", include("cohrt_sync.django.urls"))]
        sys.modules["no_flask_urls"] = urls
        settings.configure(
            INSTALLED_APPS=["cohrt_sync.django"],
            ROOT_URLCONF="no_flask_urls",
            ALLOWED_HOSTS=["testserver"],
            COHRT_AUTHORIZE=lambda request, user, channel, action: True,
        )
        import django
        django.setup()
        from django.core.checks import run_checks
        from django.test import Client
        c = Client()
        script = c.get("/realtime/cohrt-sync.js")
        token = c.post("/realtime/token", data="{}", content_type="application/json")
        print(json.dumps({
            "script": script.status_code,
            "token": [token.status_code, token.json()],
            "checks": sorted(m.id for m in run_checks()),
            "loaded": sorted(m for m in ("flask", "aiohttp", "werkzeug") if m in sys.modules),
        }))
        """,
    )
    assert got["script"] == 200
    assert got["token"] == [
        401, {"error": {"code": 401, "message": "not logged in", "status": "UNAUTHENTICATED"}}
    ]
    assert got["checks"] == ["cohrt_sync.W001"]  # no key; nothing about flask
    assert got["loaded"] == []


def test_flask_adapter_works_without_django() -> None:
    pytest.importorskip("flask", reason="needs the [flask] extra")
    got = run_without(
        {"django", "aiohttp"},
        """
        import json, sys
        from flask import Flask
        from cohrt_sync.flask import Cohrt
        app = Flask(__name__)
        Cohrt(app)
        c = app.test_client()
        print(json.dumps({
            "script": c.get("/realtime/cohrt-sync.js").status_code,
            "token": c.post("/realtime/token", json={}).status_code,
            "loaded": sorted(m for m in ("django", "aiohttp") if m in sys.modules),
        }))
        """,
    )
    assert got == {"script": 200, "token": 401, "loaded": []}


def test_the_web_core_imports_no_framework() -> None:
    got = run_without(
        {"flask", "django", "aiohttp", "werkzeug"},
        """
        import json, sys
        import cohrt_sync.web, cohrt_sync.envelope, cohrt_sync.scrollback
        from cohrt_sync.web import RealtimeRoutes, script_path
        print(json.dumps({"script": script_path("cohrt-sync.js").is_file()}))
        """,
    )
    assert got == {"script": True}
