"""The extension's shape: lazy client, no key needed to build or test an app, errors mapped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List

import pytest
from flask import Flask
from flask_test_app import KEY, build_app, login

import cohrt_sync
from cohrt_sync.flask import Cohrt, NotConfiguredError
from tests.forked import in_forked_child
from tests.servers.publish_counter import PublishCounter


def test_an_app_without_a_key_builds_and_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COHRT_KEY", "COHESIVITY_KEY", "COHRT_BASE_URL", "COHESIVITY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = build_app({})
    c = app.test_client()
    assert c.get("/").get_data(as_text=True) == "home"
    login(c)
    r = c.post("/realtime/token", json={"channel": "chat:x"})
    assert r.status_code == 503
    assert r.json["error"]["message"] == (
        "realtime is not configured: set COHRT_KEY in the app config or the environment"
    )
    with app.app_context(), pytest.raises(NotConfiguredError):
        _ = app.extensions["test_cohrt"].client


def test_the_key_and_url_fall_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: Any
) -> None:
    monkeypatch.setenv("COHRT_KEY", KEY)
    monkeypatch.setenv("COHRT_BASE_URL", server.base_url)
    app = build_app({})
    c = app.test_client()
    login(c)
    assert c.post("/realtime/token", json={"channel": "chat:env"}).status_code == 200
    app.extensions["test_cohrt"].close(app)


def test_the_client_is_lazy_and_one_per_app_for_every_thread(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    state = app.extensions["cohrt"]
    assert state._client is None  # building the app made no client
    seen: List[cohrt_sync.Client] = []

    def use() -> None:
        with app.app_context():
            seen.append(app.extensions["test_cohrt"].client)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(seen) == 4 and all(c is seen[0] for c in seen)
    app.extensions["test_cohrt"].close(app)
    assert seen[0].closed


def test_one_extension_serves_apps_from_a_factory(server: Any) -> None:
    cohrt = Cohrt(user_loader=lambda: ("1", None), authorize=lambda user, channel, action: True)
    apps = []
    for prefix in ("/realtime", "/rt"):
        app = Flask(__name__)
        app.config.update(COHRT_KEY=KEY, COHRT_BASE_URL=server.base_url, COHRT_URL_PREFIX=prefix)
        cohrt.init_app(app)
        apps.append(app)
    body = {"channel": "c"}
    try:
        assert apps[0].test_client().post("/realtime/token", json=body).status_code == 200
        assert apps[1].test_client().post("/rt/token", json=body).status_code == 200
        assert apps[1].test_client().post("/realtime/token", json=body).status_code == 404
        with apps[0].app_context():
            first = cohrt.client
        with apps[1].app_context():
            assert cohrt.client is not first
    finally:
        for app in apps:
            cohrt.close(app)


def test_a_refused_server_key_is_a_503_not_the_browsers_401(
    make_app: Callable[..., Flask],
) -> None:
    c = make_app(COHRT_KEY="k_not_a_key_of_this_server").test_client()
    login(c)
    r = c.post("/realtime/token", json={"channel": "chat:x"})
    assert r.status_code == 503 and r.json["error"]["status"] == "UNAVAILABLE"
    assert "k_not_a_key" not in r.get_data(as_text=True)


def test_a_rate_limit_is_a_429_with_retry_after(tmp_path: Any) -> None:
    from cohrt_sync.server import LocalServer

    with LocalServer(keys=[KEY], provision=True, tier="ephemeral", data_dir=tmp_path) as srv:
        app = build_app(
            {
                "COHRT_KEY": KEY,
                "COHRT_BASE_URL": srv.base_url,
                "COHRT_CLIENT_OPTIONS": {"retry": cohrt_sync.Retry(total=0)},
            }
        )
        c = app.test_client()
        login(c)
        answers = [c.post("/realtime/token", json={"channel": "chat:x"}) for _ in range(8)]
        app.extensions["test_cohrt"].close(app)
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_cohrt_sync_imports_without_flask() -> None:
    code = (
        "import sys; sys.modules['flask'] = None\n"
        "import cohrt_sync, cohrt_sync.server\n"
        "try:\n    import cohrt_sync.flask\nexcept ImportError as e:\n    print('no flask:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("no flask:")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (gunicorn --preload's model)")
def test_a_forked_worker_keeps_the_apps_client_and_what_was_registered(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    cohrt = app.extensions["test_cohrt"]
    counter = PublishCounter()
    with app.app_context():
        parent = cohrt.client  # as the master does under gunicorn --preload
        parent.register(counter)
        parent.history("chat:before-the-fork")  # a pooled connection the worker inherits

    def worker() -> Dict[str, Any]:
        c = app.test_client()
        login(c)
        r = c.post("/realtime/publish", json={"channel": "chat:forked", "data": {"n": 1}})
        with app.app_context():
            return {
                "same": cohrt.client is parent,
                "registered": cohrt.client.plugin_manager.is_registered(counter),
                "status": r.status_code,
                "published": counter.published,
            }

    found = in_forked_child(worker)
    # Plugins registered at start-up are still there in the worker, and see
    # its publishes (before, the worker made a new client without them).
    assert found == {"same": True, "registered": True, "status": 200, "published": 1}
    with app.app_context():
        assert cohrt.client is parent
    assert counter.published == 0  # the worker's count is the worker's


def test_a_client_made_again_after_close_keeps_what_was_registered(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    cohrt = app.extensions["test_cohrt"]
    counter = PublishCounter()
    with app.app_context():
        first = cohrt.client
        first.register(counter, name="counter")
        cohrt.close(app)
        assert first.closed
        second = cohrt.client
        assert second is not first and not second.closed
        assert second.plugin_manager.get_plugin("counter") is counter
        # The built-in plugins are the new client's own, not the closed one's.
        builtin = [n for n, _ in first.plugin_manager.list_name_plugin() if n != "counter"]
        for name in builtin:
            assert second.plugin_manager.get_plugin(name) is not first.plugin_manager.get_plugin(
                name
            )
        second.publish("chat:again", {"n": 1})
    assert counter.published == 1
