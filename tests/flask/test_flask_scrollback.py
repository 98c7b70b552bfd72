"""Scrollback through the Flask routes: ``history?newest=N``, and the anchor's checked answer."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from flask import Flask
from flask_test_app import KEY, build_app, login

import cohrt_sync
from tests.hostile._server import KEY as HOSTILE_KEY
from tests.hostile._server import HostileServer, json_response


def test_history_newest_is_the_channels_newest_oldest_first(
    make_app: Callable[..., Flask], server: Any, channel: str
) -> None:
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        mine = []
        for n in range(6):
            mine.append(direct.publish(channel, {"n": n}).id)
            direct.publish(channel + "-other", {"noise": n})
    c = make_app().test_client()
    login(c)
    r = c.get(f"/realtime/history?channel={channel}&newest=4&latest=1")
    assert r.status_code == 200, r.json
    assert [i["id"] for i in r.json["items"]] == mine[-4:]
    assert r.json["last_id"] == mine[-1]
    assert set(r.json["items"][0]) == {"id", "channel", "event", "action", "data", "created_at_ms"}
    for bad in ("newest=0", "newest=101", "newest=2&limit=3"):
        assert c.get(f"/realtime/history?channel={channel}&{bad}").status_code == 400


@pytest.mark.parametrize("last_id", ["many", [1], -4])
def test_a_misshapen_anchor_is_walked_not_a_500(last_id: Any) -> None:
    # The routes' own copy of the anchor read int(rows[0]["last_id"]): "many"
    # was a ValueError, so a 500 page; [1] a TypeError. Now one checked
    # implementation (cohrt_sync.scrollback.last_id) walks the history instead.
    with HostileServer() as hostile:
        ids = [hostile.store("room:a", {"n": n})["id"] for n in range(3)]

        async def sql(request: Any) -> Any:
            return json_response({"results": [{"last_id": last_id}]})

        hostile.on_sql = sql
        app = build_app({"COHRT_KEY": HOSTILE_KEY, "COHRT_BASE_URL": hostile.base_url})
        c = app.test_client()
        login(c)
        r = c.get("/realtime/history?channel=room:a&latest=1&limit=1")
        app.extensions["test_cohrt"].close(app)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.json["last_id"] == ids[-1]
