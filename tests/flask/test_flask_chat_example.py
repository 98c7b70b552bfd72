"""examples/flask_chat on the test client: DMs open to members only, CSRF, no caching, redirects.

What must render is checked in Chromium (test_flask_chat_browser.py and
test_flask_chat_hostile_messages.py).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from flask_test_app import KEY

import cohrt_sync

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_chat" / "app.py"
SECRET = "example-secret-of-32-bytes-at-least"


@pytest.fixture
def example(server: Any) -> Iterator[Any]:
    spec = importlib.util.spec_from_file_location("flask_chat_example_tc", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    app: Flask = module.create_app(
        {"COHRT_KEY": KEY, "COHRT_BASE_URL": server.base_url, "SECRET_KEY": SECRET}
    )
    yield module, app
    module.cohrt.close(app)


NO_STORE = "private, no-store, max-age=0"


def csrf_of(page: Any) -> str:
    """The CSRF token a page of the app carries in its forms ("" when it has none)."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    return found.group(1) if found else ""


def logged_in(app: Flask, name: str) -> Any:
    """A test client logged in as ``name`` through the login form, sending its CSRF token."""
    c = app.test_client()
    token = csrf_of(c.get("/"))
    assert c.post("/login", data={"name": name, "csrf": token}).status_code == 302
    # Every later POST carries the new session's token, as chat.js does.
    c.environ_base["HTTP_X_CSRF_TOKEN"] = csrf_of(c.get("/"))
    return c


def test_a_dm_is_open_to_its_two_members_only(example: Any, server: Any) -> None:
    module, app = example
    alice, bob, eve = (logged_in(app, n) for n in ("Alice", "Bob", "Eve"))
    r = alice.post("/dm/bob")
    assert r.status_code == 200
    channel = r.json["channel"]
    assert channel == module.dm_channel(SECRET, "bob", "alice")
    assert "alice" not in channel.split(":", 1)[1]  # the keyed part reveals nothing

    # Bob heard of it on his private inbox, from the server, with a verified sender.
    inbox = module.inbox_channel(SECRET, "bob")
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        (request,) = direct.history(inbox)
    assert request.event == "dm_request"
    assert request.data == {"channel": channel, "sender": {"id": "alice", "name": "Alice"}}

    said = {"channel": channel, "data": {"text": "psst"}}
    assert alice.post("/realtime/publish", json=said).status_code == 200
    (item,) = bob.get(f"/realtime/history?channel={channel}").json["items"]
    assert item["data"] == {"text": "psst", "sender": {"id": "alice", "name": "Alice"}}
    for route in (
        lambda c: c.post("/realtime/token", json={"channel": channel}),
        lambda c: c.get(f"/realtime/history?channel={channel}"),
        lambda c: c.post("/realtime/publish", json=said),
    ):
        assert route(eve).status_code == 403
    # A DM name Eve makes up, or Bob's inbox, gets her nowhere either.
    forged = channel.replace("dm-alice-bob", "dm-alice-eve")
    assert eve.get(f"/realtime/history?channel={forged}").status_code == 403
    assert eve.get(f"/realtime/history?channel={inbox}").status_code == 403
    assert bob.post("/realtime/publish", json={"channel": inbox, "data": {}}).status_code == 403
    assert eve.post("/realtime/token", json={"channel": "room:lobby"}).status_code == 200
    assert eve.post("/realtime/token", json={"channel": "room:nope"}).status_code == 403


def test_a_cross_site_post_cannot_act_for_the_user(example: Any, server: Any) -> None:
    module, app = example
    victim = logged_in(app, "Erin")
    # What a form on another site sends: the victim's cookie, no token.
    del victim.environ_base["HTTP_X_CSRF_TOKEN"]
    forged = [
        victim.post("/dm/frank"),
        victim.post("/dm/frank", data={"csrf": "guessed"}),
        victim.post("/logout"),
        victim.post(
            "/realtime/publish", json={"channel": "room:lobby", "data": {"text": "forged"}}
        ),
    ]
    for r in forged:
        assert r.status_code == 403
        assert r.json["error"]["message"] == (
            "missing or stale CSRF token: reload the page and try again"
        )
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        assert direct.history(module.inbox_channel(SECRET, "frank")) == []
    assert victim.get("/").get_data(as_text=True).count('id="messages"') == 1  # still logged in
    # The session cookie stays home on cross-site requests.
    c = app.test_client()
    r = c.get("/")
    assert "SameSite=Lax" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    # The login form itself needs the token too (no login CSRF).
    assert c.post("/login", data={"name": "Mallory"}).status_code == 403


def test_pages_that_name_private_channels_are_never_cached(example: Any) -> None:
    _, app = example
    anonymous = app.test_client()
    assert anonymous.get("/").headers["Cache-Control"] == NO_STORE  # the login page
    alice = logged_in(app, "Alice")
    page = alice.get("/?room=random")
    assert page.status_code == 200 and "inbox-alice:" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == NO_STORE
    dm = alice.post("/dm/bob")
    assert dm.status_code == 200 and dm.headers["Cache-Control"] == NO_STORE
    refused = alice.post("/dm/alice")
    assert refused.status_code == 400 and refused.headers["Cache-Control"] == NO_STORE
    # The page's static files may be cached: they name nothing private.
    assert "no-store" not in alice.get("/static/chat.js").headers.get("Cache-Control", "")


def test_login_and_logout_never_redirect_off_site(example: Any) -> None:
    _, app = example
    c = app.test_client()
    token = csrf_of(c.get("/"))
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = c.post(f"/login?next={target}", data={"name": "Alice", "csrf": token, "next": target})
        assert r.status_code == 302 and r.headers["Location"] == "/"
        token = csrf_of(c.get("/"))
        r = c.post(f"/logout?next={target}", data={"csrf": token, "next": target})
        assert r.status_code == 302 and r.headers["Location"] == "/"
        token = csrf_of(c.get("/"))
    # An unknown room is the lobby, never a URL taken from the query.
    page = logged_in(app, "Bob").get("/?room=https://evil.example/")
    assert page.status_code == 200 and "evil.example" not in page.get_data(as_text=True)
