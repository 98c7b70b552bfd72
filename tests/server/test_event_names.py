"""Events named like the protocol's own frames are accepted, and told apart by ``data``.

The spec accepts any event and has recipients see ``action`` equal to it, so
``event: "published"`` or ``"join"`` arrive as ``action: "published"`` or
``"join"``. The server stays faithful to that (docs/server.md, "Wire
decisions"); what tells a message from the server's own frames is that every
message carries ``data`` and no ack, presence or greeting frame ever does.
"""

from __future__ import annotations

import pytest

from ._wire import Api, Sock, uniq

PROTOCOL_NAMES = ["published", "join", "leave", "connected", "subscribed", "message", "publish"]


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_an_event_named_like_a_protocol_frame_is_a_message_with_data(
    api_a: Api, base_url: str, name: str
) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as alice, Sock(
        base_url, api_a.token("bob"), ch
    ) as bob:
        ack = alice.publish({"n": 1}, event=name)
        assert ack["action"] == ack["event"] == "published" and "data" not in ack, ack
        got = bob.message()
        assert got["action"] == got["event"] == name and got["data"] == {"n": 1}, got
        r = api_a.publish(ch, {"n": 2}, event=name)
        assert r.status_code == 200 and r.json()["action"] == r.json()["event"] == name
        got = bob.message(lambda f: f["data"] == {"n": 2})
        assert got["action"] == name, got
    history = api_a.history_ok(ch)
    assert [(m["action"], m["event"], m["data"]) for m in history] == [
        (name, name, {"n": 1}),
        (name, name, {"n": 2}),
    ]


def test_the_servers_own_frames_never_carry_data(api_a: Api, base_url: str) -> None:
    ch = uniq()
    alice = Sock(base_url, api_a.token("alice"), ch)
    own = [alice.connected, alice.subscribed]
    with Sock(base_url, api_a.token("bob"), ch) as bob:
        own += [bob.connected, bob.subscribed, alice.until(lambda f: f["action"] == "join")]
        own.append(bob.publish({"n": 1}, event="join"))  # the ack
        alice.close()
        own.append(bob.until(lambda f: f["action"] == "leave"))
    assert [f["action"] for f in own] == [
        "connected",
        "subscribed",
        "connected",
        "subscribed",
        "join",
        "published",
        "leave",
    ]
    assert all("data" not in f for f in own), own
