"""The Flask tests' app and helpers, imported by the test modules as ``flask_test_app``.

They live here, not in ``conftest.py``: a test module that imports from
``conftest`` gets whichever ``conftest`` was imported first, which is
``plugins/conftest.py`` when ``plugins`` is collected in the same run.
"""

from __future__ import annotations

from typing import Any, Dict, List

from flask import Flask, session

from cohrt_sync import User
from cohrt_sync.flask import Cohrt

KEY = "k_flask_s3cr3t_value"


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


def login(client: Any, uid: str = "30", name: str = "Alice") -> None:
    """Log the test client in as ``uid``."""
    assert client.post(f"/login?uid={uid}&name={name}").status_code == 200
