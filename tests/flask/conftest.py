"""Fixtures for the Flask tests: a real local server, and apps built on the extension.

This directory has no ``__init__.py`` on purpose: as a package, ``tests/flask``
would shadow the real ``flask`` for every test module.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Iterator, List

import pytest

pytest.importorskip("flask", reason="needs the [flask] extra")
server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")

from flask import Flask, session  # noqa: E402

from cohrt_sync import Retry, User  # noqa: E402
from cohrt_sync.flask import Cohrt  # noqa: E402

KEY = "k_flask_s3cr3t_value"
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


class Denials:
    """What the test app's ``authorize`` refuses: (channel, action) pairs."""

    def __init__(self) -> None:
        self.refused: set = set()
        self.calls: List[tuple] = []

    def __call__(self, user: User, channel: str, action: str) -> bool:
        self.calls.append((user, channel, action))
        return (channel, action) not in self.refused


#: ``build_app(denials=NO_POLICY)``: an app that sets no ``authorize`` at all.
NO_POLICY = "no policy"


def build_app(config: Dict[str, Any], denials: Any = None) -> Flask:
    """An app in factory style: login by ``?uid=&name=`` into the session.

    Its policy is ``denials`` (a fresh :class:`Denials`, which allows
    everything, when None), or none at all with :data:`NO_POLICY`.
    """
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", **config)
    cohrt = Cohrt()

    @cohrt.user_loader
    def current_user() -> Any:
        return (session["uid"], session.get("name")) if "uid" in session else None

    if denials is None:
        denials = Denials()
    if denials is not NO_POLICY:
        cohrt.authorize(denials)
    cohrt.init_app(app)

    @app.post("/login")
    def login() -> str:
        from flask import request

        session["uid"] = request.args["uid"]
        session["name"] = request.args.get("name")
        return "ok"

    @app.get("/")
    def home() -> str:
        return "home"

    app.extensions["test_cohrt"] = cohrt
    return app


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


def login(client: Any, uid: str = "30", name: str = "Alice") -> None:
    """Log the test client in as ``uid``."""
    assert client.post(f"/login?uid={uid}&name={name}").status_code == 200
