"""The Django routes on Django's test client, against a real local server: Flask's shapes."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import pytest
import websocket
from django.test import Client as DjangoClient
from project import realtime as hooks

import cohrt_sync

from .conftest import KEY, NO_STORE, make_user, post_json


def test_token_answers_a_socket_url_for_request_user(
    realtime: Callable[..., None], browser: DjangoClient, alice: Any, channel: str
) -> None:
    realtime()
    r = post_json(browser, "/realtime/token", {"channel": channel})
    assert r.status_code == 200, r.content
    assert r["Cache-Control"] == NO_STORE
    body = r.json()
    assert set(body) == {"token", "url", "expires_in", "user"}
    # The default user: (str(pk), full name).
    assert body["expires_in"] == 300
    assert body["user"] == {"id": str(alice.pk), "name": "Alice Liddell"}
    ws = websocket.create_connection(body["url"], timeout=5)
    try:
        frames = [json.loads(ws.recv()) for _ in range(2)]
    finally:
        ws.close()
    assert frames[1]["action"] == "subscribed" and frames[1]["channel"] == channel
    assert frames[1]["presence"] == [{"id": str(alice.pk), "name": "Alice Liddell"}]
    assert KEY not in r.content.decode()


def test_a_user_without_a_full_name_is_named_by_username(
    realtime: Callable[..., None], channel: str
) -> None:
    realtime(COHRT_TOKEN_TTL=600)
    c = DjangoClient()
    bob = make_user("bob_without_a_name")
    c.force_login(bob)
    body = post_json(c, "/realtime/token", {"channel": channel}).json()
    assert body["user"] == {"id": str(bob.pk), "name": "bob_without_a_name"}
    assert body["expires_in"] == 600


def test_history_pages_and_latest(
    realtime: Callable[..., None], browser: DjangoClient, server: Any, channel: str
) -> None:
    realtime()
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        ids = [direct.publish(channel, {"n": n}).id for n in range(3)]
    r = browser.get(f"/realtime/history?channel={channel}&after={ids[0]}&limit=1")
    assert r.status_code == 200 and r["Cache-Control"] == NO_STORE
    (item,) = r.json()["items"]
    assert item["id"] == ids[1] and item["data"] == {"n": 1} and item["event"] == "message"
    assert set(item) == {"id", "channel", "event", "action", "data", "created_at_ms"}
    assert "last_id" not in r.json()
    latest = browser.get(f"/realtime/history?channel={channel}&latest=1&limit=1").json()
    assert latest["last_id"] == ids[-1] and latest["items"][0]["id"] == ids[0]


def test_history_newest_is_the_channels_newest_oldest_first(
    realtime: Callable[..., None], browser: DjangoClient, server: Any, channel: str
) -> None:
    realtime()
    other = channel + "-other"
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        mine = []
        for n in range(8):
            mine.append(direct.publish(channel, {"n": n}).id)
            direct.publish(other, {"noise": n})  # ids count across the tenant
    r = browser.get(f"/realtime/history?channel={channel}&newest=3&latest=1")
    assert r.status_code == 200, r.json()
    assert [i["id"] for i in r.json()["items"]] == mine[-3:]
    assert [i["data"]["n"] for i in r.json()["items"]] == [5, 6, 7]
    assert r.json()["last_id"] == mine[-1]
    for bad, words in (
        ("newest=0", "newest must be between 1 and 100"),
        ("newest=101", "newest must be between 1 and 100"),
        ("newest=x", "newest must be an integer"),
        ("newest=5&after=3", "send newest alone"),
    ):
        r = browser.get(f"/realtime/history?channel={channel}&{bad}")
        assert r.status_code == 400, bad
        assert words in r.json()["error"]["message"]


def test_publish_stamps_the_verified_sender(
    realtime: Callable[..., None], browser: DjangoClient, alice: Any, server: Any, channel: str
) -> None:
    realtime()
    r = post_json(
        browser,
        "/realtime/publish",
        {"channel": channel, "data": {"text": "hi", "sender": {"id": "1", "name": "Admin"}}},
    )
    assert r.status_code == 200, r.json()
    ack = r.json()
    stamped = {"text": "hi", "sender": {"id": str(alice.pk), "name": "Alice Liddell"}}
    assert ack["channel"] == channel and ack["event"] == "message" and ack["data"] == stamped
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        (msg,) = direct.history(channel)
    assert msg.data == stamped
    once = {"channel": channel, "data": {"text": "once"}}
    first = post_json(browser, "/realtime/publish", once, HTTP_IDEMPOTENCY_KEY="m-1")
    again = post_json(browser, "/realtime/publish", once, HTTP_IDEMPOTENCY_KEY="m-1")
    assert first.json()["id"] == again.json()["id"]


def test_the_browser_client_is_served_and_sets_the_csrf_cookie(
    realtime: Callable[..., None],
) -> None:
    realtime()
    c = DjangoClient()
    r = c.get("/realtime/cohrt-sync.js")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/javascript")
    text = b"".join(r.streaming_content).decode()
    assert "export async function subscribe" in text and "X-CSRFToken" in text
    assert "csrftoken" in r.cookies
    imported = c.get("/realtime/cohrt-sync-delivery.js")
    assert imported.status_code == 200
    assert "export class Ledger" in b"".join(imported.streaming_content).decode()
    assert c.get("/realtime/settings.py").status_code == 404


def test_every_route_answers_401_without_a_user(
    realtime: Callable[..., None], channel: str
) -> None:
    realtime()
    c = DjangoClient()
    for r in (
        post_json(c, "/realtime/token", {"channel": channel}),
        c.get(f"/realtime/history?channel={channel}"),
        post_json(c, "/realtime/publish", {"channel": channel, "data": {}}),
    ):
        assert r.status_code == 401
        assert r.json() == {
            "error": {"code": 401, "message": "not logged in", "status": "UNAUTHENTICATED"}
        }
        assert r["Cache-Control"] == NO_STORE


def test_cohrt_user_replaces_request_user(realtime: Callable[..., None], channel: str) -> None:
    realtime(COHRT_USER="project.realtime.from_header")
    c = DjangoClient()
    r = post_json(c, "/realtime/token", {"channel": channel}, HTTP_X_USER="u-9")
    assert r.status_code == 200 and r.json()["user"] == {"id": "u-9", "name": "User u-9"}
    assert post_json(c, "/realtime/token", {"channel": channel}).status_code == 401


def test_cohrt_authorize_is_asked_for_each_action_with_the_request(
    realtime: Callable[..., None], browser: DjangoClient, alice: Any, channel: str
) -> None:
    realtime()
    requests_by_action = {
        "subscribe": lambda: post_json(browser, "/realtime/token", {"channel": channel}),
        "history": lambda: browser.get(f"/realtime/history?channel={channel}"),
        "publish": lambda: post_json(
            browser, "/realtime/publish", {"channel": channel, "data": {}}
        ),
    }
    for action, send in requests_by_action.items():
        assert send().status_code == 200
        hooks.REFUSED.add((channel, action))
        r = send()
        assert r.status_code == 403, action
        assert r.json()["error"] == {
            "code": 403,
            "message": f"user '{alice.pk}' may not {action} on this channel",
            "status": "PERMISSION_DENIED",
        }
    assert {a for _, ch, a in hooks.ASKED if ch == channel} == set(requests_by_action)


def test_without_cohrt_authorize_every_channel_is_refused(
    realtime: Callable[..., None],
    browser: DjangoClient,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    realtime(COHRT_AUTHORIZE=None)
    answers = [
        post_json(browser, "/realtime/token", {"channel": channel}),
        browser.get(f"/realtime/history?channel={channel}"),
        post_json(browser, "/realtime/publish", {"channel": channel, "data": {}}),
    ]
    for r in answers:
        assert r.status_code == 403
        message = r.json()["error"]["message"]
        assert message.startswith("no channel policy: ") and "\n" not in message
        assert "set COHRT_AUTHORIZE in settings" in message and "docs/django.md" in message
    warnings = [r for r in caplog.records if "no authorize callback" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_post_routes_follow_djangos_csrf_rules(
    realtime: Callable[..., None], alice: Any, channel: str
) -> None:
    realtime()
    c = DjangoClient(enforce_csrf_checks=True)
    c.force_login(alice)
    refused = post_json(c, "/realtime/token", {"channel": channel})
    assert refused.status_code == 403
    assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
    assert refused.json()["error"]["message"].startswith("CSRF check failed: send the csrftoken")
    assert c.get(f"/realtime/history?channel={channel}").status_code == 200  # GET is safe
    c.get("/realtime/cohrt-sync.js")  # sets the cookie, as the page's import does
    token = c.cookies["csrftoken"].value
    ok = post_json(c, "/realtime/token", {"channel": channel}, HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200, ok.json()
    forged = post_json(c, "/realtime/publish", {"channel": channel, "data": {}},
                       HTTP_X_CSRFTOKEN="x" * 32)
    assert forged.status_code == 403


def test_bad_input_is_a_clear_400(
    realtime: Callable[..., None], browser: DjangoClient, channel: str
) -> None:
    realtime()
    form = browser.post("/realtime/publish", {"channel": channel, "data": "x"})  # urlencoded
    cases = [
        (browser.post("/realtime/token", data="nope", content_type="text/plain"), "JSON object"),
        (form, "Content-Type: application/json"),
        (post_json(browser, "/realtime/token", {}), "channel is required"),
        (post_json(browser, "/realtime/token", {"channel": ""}), "channel must be"),
        (browser.get(f"/realtime/history?channel={channel}&after=x"), "after must be an integer"),
        (browser.get(f"/realtime/history?channel={channel}&limit=500"), "limit must be between"),
        (post_json(browser, "/realtime/publish", {"channel": channel, "data": 1}), "JSON object"),
        (
            browser.post(
                "/realtime/token", data="[" * 100_000 + "]" * 100_000,
                content_type="application/json",
            ),
            "nested too deeply",
        ),
        (
            browser.post(
                "/realtime/publish", data='{"channel": "c", "data": {"t": "\\ud800"}}',
                content_type="application/json",
            ),
            "lone UTF-16 surrogate",
        ),
    ]
    for r, words in cases:
        assert r.status_code == 400, (words, r.content[:200])
        assert words in r.json()["error"]["message"]
        assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_body_over_djangos_limit_is_a_413_envelope(
    realtime: Callable[..., None], browser: DjangoClient, channel: str
) -> None:
    realtime(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
    big = {"channel": channel, "data": {"text": "x" * 2000}}
    r = post_json(browser, "/realtime/publish", big)
    assert r.status_code == 413
    assert r.json()["error"]["message"].startswith("the body is over DATA_UPLOAD_MAX_MEMORY_SIZE")


def test_the_token_budget_is_per_user(
    realtime: Callable[..., None], browser: DjangoClient, channel: str
) -> None:
    realtime(COHRT_USER_TOKEN_BUDGET={"burst": 2, "per_minute": 1})
    codes = [post_json(browser, "/realtime/token", {"channel": channel}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    r = post_json(browser, "/realtime/token", {"channel": channel})
    assert int(r["Retry-After"]) >= 1
    assert "too many connection tokens" in r.json()["error"]["message"]
    other = DjangoClient()
    other.force_login(make_user("carol"))
    assert post_json(other, "/realtime/token", {"channel": channel}).status_code == 200


def test_without_a_key_the_routes_answer_503_saying_where_to_set_it(
    realtime: Callable[..., None],
    browser: DjangoClient,
    channel: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("COHRT_KEY", "COHESIVITY_KEY"):
        monkeypatch.delenv(name, raising=False)
    realtime(COHRT_KEY=None)
    r = post_json(browser, "/realtime/token", {"channel": channel})
    assert r.status_code == 503
    assert r.json()["error"]["message"] == (
        "realtime is not configured: set COHRT_KEY in settings.py or the environment"
    )


def test_the_key_and_url_fall_back_to_the_environment(
    realtime: Callable[..., None],
    browser: DjangoClient,
    server: Any,
    channel: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COHRT_KEY", KEY)
    monkeypatch.setenv("COHRT_BASE_URL", server.base_url)
    realtime(COHRT_KEY=None, COHRT_BASE_URL=None)
    assert post_json(browser, "/realtime/token", {"channel": channel}).status_code == 200
