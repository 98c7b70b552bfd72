"""Fixtures for the Django tests: the test project set up once, a real local server, users.

The project is ``tests/django_app/project`` (its ``manage.py`` beside it),
imported as ``project``. The folder is not called ``tests/django``: a
package of that name would shadow the real ``django``, and without an
``__init__.py`` its ``conftest`` would take the place of ``tests/flask``'s
(both would be the module ``conftest``). Django is set up once per test process,
on a SQLite file of its own; each test gets the realtime settings with
``override_settings`` (whose ``setting_changed`` signal rebuilds the app's
client and routes, as it would in a user's tests).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest

pytest.importorskip("django", reason="needs the [django] extra")
server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")

HERE = Path(__file__).resolve().parent
_DB_DIR = tempfile.mkdtemp(prefix="cohrt-django-tests-")
os.environ["COHRT_TEST_DJANGO_DB"] = str(Path(_DB_DIR) / "db.sqlite3")
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client as DjangoClient  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from cohrt_sync import Retry  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)

KEY = "k_django_s3cr3t_value"
NO_STORE = "private, no-store, max-age=0"
_counter = itertools.count()


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """A shared local server with ids on live frames (tests use unique channels)."""
    srv = server_mod.LocalServer(keys=[KEY], provision=True).start()
    yield srv
    srv.close()


@pytest.fixture
def channel(request: pytest.FixtureRequest) -> str:
    """A channel name unique to this test."""
    return f"chat:{request.node.name[:60]}_{next(_counter)}"


@pytest.fixture
def realtime(server: Any) -> Iterator[Callable[..., Any]]:
    """``realtime(**settings)``: the project's COHRT_* settings on ``server``, for this test.

    Called once, it applies them (later calls stack); each is undone, and
    the app's client closed, at teardown.
    """
    stack = []

    def apply(**settings: Any) -> None:
        values: Dict[str, Any] = {
            "COHRT_KEY": KEY,
            "COHRT_BASE_URL": server.base_url,
            "COHRT_CLIENT_OPTIONS": {"retry": Retry(total=0)},
        }
        values.update(settings)
        override = override_settings(**values)
        override.enable()
        stack.append(override)

    yield apply
    while stack:
        stack.pop().disable()
    from cohrt_sync.django import close

    close()
    from project import realtime as hooks

    hooks.REFUSED.clear()
    hooks.ASKED.clear()


def make_user(username: str, first_name: str = "", last_name: str = "") -> Any:
    """A user of the project's auth (made once per name)."""
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"first_name": first_name, "last_name": last_name}
    )
    return user


@pytest.fixture
def alice() -> Any:
    """Alice Liddell, username ``alice``."""
    return make_user("alice", "Alice", "Liddell")


@pytest.fixture
def browser(alice: Any) -> DjangoClient:
    """Django's test client, logged in as Alice (CSRF checks off, as Django's test client does)."""
    c = DjangoClient()
    c.force_login(alice)
    return c


def post_json(client: Any, url: str, body: Any, **extra: Any) -> Any:
    """POST ``body`` as JSON with Django's test client."""
    return client.post(url, data=json.dumps(body), content_type="application/json", **extra)
