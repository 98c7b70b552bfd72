"""What a hostile browser sends the routes: a clear 400 in the JSON envelope, never a 500 or a leak.

Also the attacks that already failed and must keep failing: cross-site form
bodies, other users' idempotency keys, cacheable answers, channel names that
try to break out of the socket URL's query.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict
from urllib.parse import parse_qs, urlsplit

import pytest
import websocket
from flask import Flask
from flask_test_app import KEY, login

import cohrt_sync

NO_STORE = "private, no-store, max-age=0"

SURROGATE_BODIES: Dict[str, Dict[str, str]] = {
    "token channel": {"route": "/realtime/token", "body": '{"channel": "\\ud800"}'},
    "publish channel": {
        "route": "/realtime/publish",
        "body": '{"channel": "a\\udfff", "data": {}}',
    },
    "data value": {
        "route": "/realtime/publish",
        "body": '{"channel": "C", "data": {"t": "\\ud800"}}',
    },
    "data key": {"route": "/realtime/publish", "body": '{"channel": "C", "data": {"\\ud800": 1}}'},
    "nested value": {
        "route": "/realtime/publish",
        "body": '{"channel": "C", "data": {"a": [{"b": ["ok", "\\udbff"]}]}}',
    },
    "event": {
        "route": "/realtime/publish",
        "body": '{"channel": "C", "event": "\\ud800", "data": {}}',
    },
}


@pytest.mark.parametrize("case", sorted(SURROGATE_BODIES))
def test_a_lone_surrogate_is_a_400_not_a_500(
    make_app: Callable[..., Flask], server: Any, channel: str, case: str
) -> None:
    c = make_app().test_client()
    login(c)
    sent = SURROGATE_BODIES[case]
    body = sent["body"].replace('"C"', json.dumps(channel))
    r = c.post(sent["route"], data=body, content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert r.headers["Cache-Control"] == NO_STORE
    error = r.json["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert "lone UTF-16 surrogate" in error["message"] and "send valid Unicode" in error["message"]
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        assert direct.history(channel) == []  # nothing half-published


def test_json_nested_too_deeply_is_a_400(make_app: Callable[..., Flask], channel: str) -> None:
    c = make_app().test_client()
    login(c)
    deep = "[" * 100_000 + "]" * 100_000
    for route, body in (
        ("/realtime/token", deep),
        ("/realtime/publish", '{"channel": %s, "data": {"x": %s}}' % (json.dumps(channel), deep)),
    ):
        r = c.post(route, data=body, content_type="application/json")
        assert r.status_code == 400, r.get_data(as_text=True)[:300]
        assert r.json["error"]["message"] == "the JSON body is nested too deeply"


def test_cross_site_form_bodies_are_refused_by_the_routes(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    # What an <form> on another site can send without a CORS preflight:
    # urlencoded, multipart or text/plain, the last one even holding JSON.
    c = make_app().test_client()
    login(c)
    body = json.dumps({"channel": channel, "data": {"text": "forged"}})
    for r in (
        c.post("/realtime/publish", data={"channel": channel, "data": "x"}),
        c.post("/realtime/publish", data=body, content_type="text/plain"),
        c.post("/realtime/publish", data={"json": body}, content_type="multipart/form-data"),
        c.post("/realtime/token", data=json.dumps({"channel": channel}), content_type="text/plain"),
    ):
        assert r.status_code == 400
        assert "Content-Type: application/json" in r.json["error"]["message"]
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        assert direct.history(channel) == []


def test_idempotency_keys_are_scoped_to_the_user(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    app = make_app()
    mallory, bob = app.test_client(), app.test_client()
    login(mallory, "mallory", "Mallory")
    login(bob, "bob", "Bob")
    key = {"Idempotency-Key": "msg-1"}
    first = mallory.post(
        "/realtime/publish", json={"channel": channel, "data": {"text": "claimed"}}, headers=key
    )
    second = bob.post(
        "/realtime/publish", json={"channel": channel, "data": {"text": "bob's"}}, headers=key
    )
    assert first.status_code == second.status_code == 200
    assert first.json["id"] != second.json["id"]  # Bob's publish was applied, not replayed
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        assert [m.data["text"] for m in direct.history(channel)] == ["claimed", "bob's"]
    for bad in ("x" * 129, "a b", "é"):
        r = bob.post(
            "/realtime/publish",
            json={"channel": channel, "data": {}},
            headers={"Idempotency-Key": bad},
        )
        assert r.status_code == 400
        assert r.json["error"]["message"].startswith("Idempotency-Key must be 1 to 128 visible")


def test_every_route_answer_is_no_store(make_app: Callable[..., Flask], channel: str) -> None:
    c = make_app().test_client()
    answers = [c.get(f"/realtime/history?channel={channel}")]  # 401
    login(c)
    answers += [
        c.post("/realtime/token", json={"channel": channel}),
        c.get(f"/realtime/history?channel={channel}"),
        c.get(f"/realtime/history?channel={channel}&after=x"),  # 400
        c.post("/realtime/publish", json={"channel": channel, "data": {}}),
    ]
    assert [r.status_code for r in answers] == [401, 200, 200, 400, 200]
    for r in answers:
        assert r.headers["Cache-Control"] == NO_STORE


def test_a_channel_name_cannot_break_out_of_the_socket_url(
    make_app: Callable[..., Flask], channel: str
) -> None:
    c = make_app().test_client()
    login(c)
    hostile = f"{channel}&channel=room:other&token=x#frag ?%20/.."
    body = c.post("/realtime/token", json={"channel": hostile}).json
    query = parse_qs(urlsplit(body["url"]).query)
    assert query["channel"] == [hostile] and query["token"] == [body["token"]]
    assert "#" not in body["url"]
    ws = websocket.create_connection(body["url"], timeout=5)
    try:
        frames = [json.loads(ws.recv()) for _ in range(2)]
    finally:
        ws.close()
    assert frames[1]["action"] == "subscribed" and frames[1]["channel"] == hostile
