"""``Token.ws_url`` opens the real socket; ``private_channel`` names are keyed and stable."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
import websocket

import cohrt_sync


def test_ws_url_opens_the_channel_with_the_tokens_identity(
    server: Any, make_client: Callable[..., cohrt_sync.Client], channel_name: str
) -> None:
    client = make_client(server)
    tok = client.mint_token("30", name="Alice")
    url = tok.ws_url(channel_name)
    assert url.startswith(server.base_url.replace("http://", "ws://") + "/edge/realtime?")
    ws = websocket.create_connection(url, timeout=5)
    try:
        frames = [json.loads(ws.recv()) for _ in range(2)]
    finally:
        ws.close()
    subscribed = [f for f in frames if f.get("action") == "subscribed"]
    assert subscribed and subscribed[0]["channel"] == channel_name
    assert subscribed[0]["presence"] == [{"id": "30", "name": "Alice"}]


def test_ws_url_schemes_and_quoting() -> None:
    tok = cohrt_sync.Token(token="t.o/k", expires_in=300, base_url="https://edge.example")
    assert tok.ws_url("chat:room 42") == (
        "wss://edge.example/edge/realtime?token=t.o%2Fk&channel=chat%3Aroom+42"
    )
    plain = cohrt_sync.Token(token="t", expires_in=300, base_url="http://127.0.0.1:8787")
    assert plain.ws_url("c").startswith("ws://127.0.0.1:8787/edge/realtime?")


def test_ws_url_refuses_what_it_cannot_build() -> None:
    with pytest.raises(cohrt_sync.BadRequestError, match="no base_url"):
        cohrt_sync.Token(token="t", expires_in=300).ws_url("c")
    with pytest.raises(cohrt_sync.BadRequestError):
        cohrt_sync.Token(token="t", expires_in=300, base_url="http://x").ws_url("")
    assert "t.o" not in repr(cohrt_sync.Token(token="t.o", expires_in=1, base_url="http://x"))


SECRET = "a-server-side-secret-of-32-bytes"


def test_private_channel_is_stable_keyed_and_unambiguous() -> None:
    name = cohrt_sync.private_channel(SECRET, "dm", 3, 17)
    assert name == cohrt_sync.private_channel(SECRET, "dm", "3", "17")
    assert name.startswith("private:") and len(name) == len("private:") + 32
    others = {
        cohrt_sync.private_channel(SECRET + "x", "dm", 3, 17),
        cohrt_sync.private_channel(SECRET, "dm", 17, 3),
        cohrt_sync.private_channel(SECRET, "dm:3", 17),
        cohrt_sync.private_channel(SECRET.encode(), "dm", 3, 18),
    }
    assert name not in others and len(others) == 4
    assert cohrt_sync.private_channel(SECRET, "room", prefix="room").startswith("room:")


@pytest.mark.parametrize(
    ("secret", "parts", "kwargs", "match"),
    [
        ("short", ("dm",), {}, "at least 16 bytes"),
        (SECRET, (), {}, "at least one part"),
        (SECRET, ("dm", True), {}, "str or int"),
        (SECRET, ("dm", None), {}, "str or int"),
        (SECRET, ("dm",), {"prefix": "a:b"}, "prefix"),
    ],
)
def test_private_channel_refuses_bad_input(
    secret: Any, parts: Any, kwargs: Any, match: str
) -> None:
    with pytest.raises(cohrt_sync.BadRequestError, match=match):
        cohrt_sync.private_channel(secret, *parts, **kwargs)
