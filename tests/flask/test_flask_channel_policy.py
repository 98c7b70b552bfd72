"""The routes' channel policy: with no ``authorize``, every channel is refused (safe by default).

The routes act with the application key, which reaches every channel of the
tenant: without a policy, any logged-in user could read ``dm:bob_carol``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
import requests
from flask import Flask
from flask_test_app import KEY, NO_POLICY, login

import cohrt_sync

NO_STORE = "private, no-store, max-age=0"


def test_without_a_policy_every_route_refuses_every_channel(
    make_app: Callable[..., Flask], server: Any, caplog: pytest.LogCaptureFixture, channel: str
) -> None:
    dm, inbox = f"dm:bob_carol.{channel}", f"user:bob.{channel}"  # unique on the shared server
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        direct.publish(dm, {"text": "for bob and carol only"})
        direct.publish(inbox, {"from": "carol"}, event="dm_request")
    c = make_app(NO_POLICY).test_client()
    login(c, "mallory", "Mallory")
    answers = {
        "history": c.get("/realtime/history", query_string={"channel": dm}),
        "inbox history": c.get("/realtime/history", query_string={"channel": inbox, "latest": 1}),
        "subscribe": c.post("/realtime/token", json={"channel": dm}),
        "publish": c.post(
            "/realtime/publish",
            json={"channel": inbox, "event": "dm_request", "data": {"from": "x"}},
        ),
    }
    for what, r in answers.items():
        assert r.status_code == 403, (what, r.json)
        assert r.headers["Cache-Control"] == NO_STORE
        error = r.json["error"]
        assert error["status"] == "PERMISSION_DENIED" and error["code"] == 403
        # One line: what happened, and what to do.
        assert "\n" not in error["message"]
        assert error["message"].startswith("no channel policy: ")
        assert "@cohrt.authorize" in error["message"]
        assert "for bob and carol only" not in r.get_data(as_text=True)
        assert "token" not in r.json
    # Nothing was published to Bob's inbox.
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        assert [m.data for m in direct.history(inbox)] == [{"from": "carol"}]
    # The developer hears of it once in the log, not once per request.
    warnings = [r for r in caplog.records if "no authorize callback" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_a_policy_opens_what_it_allows_and_nothing_else(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    app = make_app(NO_POLICY)
    app.extensions["test_cohrt"].authorize(
        lambda user, ch, action: ch == channel or (ch.startswith("dm:") and user.id in ch)
    )
    c = app.test_client()
    login(c, "mallory", "Mallory")
    assert c.get(f"/realtime/history?channel={channel}").status_code == 200
    assert c.post("/realtime/token", json={"channel": channel}).status_code == 200
    assert c.get("/realtime/history?channel=dm:bob_carol").status_code == 403
    r = c.post("/realtime/token", json={"channel": "dm:bob_carol"})
    assert r.status_code == 403
    assert r.json["error"]["message"] == "user 'mallory' may not subscribe on this channel"


def test_the_routes_grant_what_a_connection_token_does_not(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    # Why the routes need a policy: the token they hand out is only an
    # identity; the edge answers its own history request with 401.
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        direct.publish(channel, {"text": "persisted"})
    c = make_app().test_client()
    login(c)
    token = c.post("/realtime/token", json={"channel": channel}).json["token"]
    edge = requests.get(
        f"{server.base_url}/edge/realtime/history",
        params={"channel": channel},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert edge.status_code == 401
    assert "persisted" not in edge.text
    via_route = c.get(f"/realtime/history?channel={channel}")
    assert via_route.status_code == 200
    assert [i["data"] for i in via_route.json["items"]] == [{"text": "persisted"}]
