"""Fixtures for the Flask tests: a real local server, and apps built on the extension.

This directory has no ``__init__.py`` on purpose: as a package, ``tests/flask``
would shadow the real ``flask`` for every test module.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator, List

import pytest

pytest.importorskip("flask", reason="needs the [flask] extra")
server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")

from flask import Flask  # noqa: E402
from flask_test_app import KEY, build_app  # noqa: E402

from cohrt_sync import Retry  # noqa: E402

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
def make_app(server: Any) -> Iterator[Callable[..., Flask]]:
    """Build apps on ``server``; their clients are closed at teardown."""
    apps: List[Flask] = []

    def make(denials: Any = None, **config: Any) -> Flask:
        config.setdefault("COHRT_KEY", KEY)
        config.setdefault("COHRT_BASE_URL", server.base_url)
        config.setdefault("COHRT_CLIENT_OPTIONS", {"retry": Retry(total=0)})
        app = build_app(config, denials)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["test_cohrt"].close(app)
