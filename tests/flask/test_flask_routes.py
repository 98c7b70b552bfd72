"""The blueprint's routes on Flask's test client, against a real local server."""

from __future__ import annotations

import json
from typing import Any, Callable

import websocket
from flask import Flask
from flask_test_app import KEY, Denials, login

import cohrt_sync

NO_STORE = "private, no-store, max-age=0"


def test_token_answers_a_socket_url_for_the_logged_in_user(
    make_app: Callable[..., Flask], channel: str
) -> None:
    c = make_app().test_client()
    login(c, "30", "Alice")
    r = c.post("/realtime/token", json={"channel": channel})
    assert r.status_code == 200, r.json
    assert r.headers["Cache-Control"] == NO_STORE
    body = r.json
    assert set(body) == {"token", "url", "expires_in", "user"}
    assert body["expires_in"] == 300 and body["user"] == {"id": "30", "name": "Alice"}
    ws = websocket.create_connection(body["url"], timeout=5)
    try:
        frames = [json.loads(ws.recv()) for _ in range(2)]
    finally:
        ws.close()
    assert frames[1]["action"] == "subscribed" and frames[1]["channel"] == channel
    assert frames[1]["presence"] == [{"id": "30", "name": "Alice"}]
    assert KEY not in r.get_data(as_text=True)


def test_history_pages_through_the_servers_key(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        ids = [direct.publish(channel, {"n": n}).id for n in range(3)]
    c = make_app().test_client()
    login(c)
    r = c.get(f"/realtime/history?channel={channel}&after={ids[0]}&limit=1")
    assert r.status_code == 200 and r.headers["Cache-Control"] == NO_STORE
    (item,) = r.json["items"]
    assert item["id"] == ids[1] and item["data"] == {"n": 1} and item["event"] == "message"
    assert set(item) == {"id", "channel", "event", "action", "data", "created_at_ms"}
    assert "last_id" not in r.json
    latest = c.get(f"/realtime/history?channel={channel}&latest=1&limit=1").json
    assert latest["last_id"] == ids[-1] and latest["items"][0]["id"] == ids[0]


def test_publish_stamps_the_verified_sender(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    c = make_app().test_client()
    login(c, "17", "Bob")
    r = c.post(
        "/realtime/publish",
        json={"channel": channel, "data": {"text": "hi", "sender": {"id": "1", "name": "Admin"}}},
    )
    assert r.status_code == 200, r.json
    ack = r.json
    assert ack["channel"] == channel and ack["event"] == "message" and isinstance(ack["id"], int)
    assert ack["data"] == {"text": "hi", "sender": {"id": "17", "name": "Bob"}}
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        (msg,) = direct.history(channel)
    assert msg.data == {"text": "hi", "sender": {"id": "17", "name": "Bob"}}
    typing = c.post(
        "/realtime/publish",
        json={"channel": channel, "event": "typing", "data": {}, "persist": False},
    )
    assert typing.status_code == 200 and typing.json["id"] is None
    assert c.get(f"/realtime/history?channel={channel}").json["items"][-1]["id"] == msg.id


def test_publish_with_an_idempotency_key_is_applied_once(
    make_app: Callable[..., Flask], channel: str
) -> None:
    c = make_app().test_client()
    login(c)
    body = {"channel": channel, "data": {"text": "once"}}
    first = c.post("/realtime/publish", json=body, headers={"Idempotency-Key": "m-1"})
    again = c.post("/realtime/publish", json=body, headers={"Idempotency-Key": "m-1"})
    assert first.status_code == again.status_code == 200
    assert first.json["id"] == again.json["id"]
    assert len(c.get(f"/realtime/history?channel={channel}").json["items"]) == 1


def test_the_browser_client_is_served_as_an_es_module(make_app: Callable[..., Flask]) -> None:
    c = make_app().test_client()
    r = c.get("/realtime/cohrt-sync.js")
    assert r.status_code == 200
    assert r.mimetype == "text/javascript"
    assert "export async function subscribe" in r.get_data(as_text=True)
    assert 'from "./cohrt-sync-delivery.js"' in r.get_data(as_text=True)
    imported = c.get("/realtime/cohrt-sync-delivery.js")
    assert imported.status_code == 200 and "export class Ledger" in imported.get_data(as_text=True)
    assert c.get("/realtime/app.py").status_code == 404


def test_every_route_answers_401_without_a_user(
    make_app: Callable[..., Flask], channel: str
) -> None:
    c = make_app().test_client()
    for r in (
        c.post("/realtime/token", json={"channel": channel}),
        c.get(f"/realtime/history?channel={channel}"),
        c.post("/realtime/publish", json={"channel": channel, "data": {}}),
    ):
        assert r.status_code == 401
        assert r.json == {
            "error": {"code": 401, "message": "not logged in", "status": "UNAUTHENTICATED"}
        }


def test_authorize_is_asked_for_each_action_and_403s(
    make_app: Callable[..., Flask], channel: str
) -> None:
    denials = Denials()
    c = make_app(denials).test_client()
    login(c, "30", "Alice")
    requests_by_action = {
        "subscribe": lambda: c.post("/realtime/token", json={"channel": channel}),
        "history": lambda: c.get(f"/realtime/history?channel={channel}"),
        "publish": lambda: c.post("/realtime/publish", json={"channel": channel, "data": {}}),
    }
    for action, send in requests_by_action.items():
        assert send().status_code == 200
        denials.refused.add((channel, action))
        r = send()
        assert r.status_code == 403, action
        assert r.json["error"]["status"] == "PERMISSION_DENIED"
        assert action in r.json["error"]["message"]
    assert {(u.id, ch, a) for u, ch, a in denials.calls} == {
        ("30", channel, a) for a in requests_by_action
    }


def test_bad_input_is_a_clear_400(make_app: Callable[..., Flask], channel: str) -> None:
    c = make_app().test_client()
    login(c)
    cases = [
        (c.post("/realtime/token", data="nope"), "JSON object"),
        (c.post("/realtime/token", json={}), "channel is required"),
        (c.post("/realtime/token", json={"channel": ""}), "channel must be"),
        (c.get(f"/realtime/history?channel={channel}&after=x"), "after must be an integer"),
        (c.get(f"/realtime/history?channel={channel}&limit=500"), "limit must be between"),
        (c.post("/realtime/publish", json={"channel": channel, "data": "hi"}), "JSON object"),
        (
            c.post("/realtime/publish", json={"channel": channel, "data": {}, "persist": "no"}),
            "persist",
        ),
    ]
    for r, words in cases:
        assert r.status_code == 400, r.json
        assert words in r.json["error"]["message"]
        assert r.json["error"]["status"] == "INVALID_ARGUMENT"
