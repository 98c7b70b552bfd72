"""examples/flask_chat's DM pattern on the test client: only members reach a DM's routes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import KEY
from flask import Flask

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


def logged_in(app: Flask, name: str) -> Any:
    c = app.test_client()
    assert c.post("/login", data={"name": name}).status_code == 302
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
