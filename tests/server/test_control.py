"""The in-process test controls the client suite relies on: drop_channel and close_channel."""

from __future__ import annotations

import struct
from typing import Any

import websocket

from ._wire import Api, Sock, uniq


def _ending(sock: Sock, timeout: float = 5) -> tuple:
    """Read until the connection ends: ("close", code) for a close frame, ("abort", None)."""
    sock.ws.settimeout(timeout)
    while True:
        try:
            opcode, frame = sock.ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            raise AssertionError("connection did not end in time") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return "abort", None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            return "close", struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


def test_drop_channel_aborts_every_socket_of_that_channel_only(
    server: Any, api_a: Api, base_url: str
) -> None:
    ch, other = uniq(), uniq()
    a = Sock(base_url, api_a.token("alice"), ch)
    b = Sock(base_url, api_a.token("bob"), ch)
    with Sock(base_url, api_a.token("carol"), other) as c:
        server.drop_channel(ch)
        assert _ending(a) == ("abort", None)
        assert _ending(b) == ("abort", None)
        # the other channel is untouched
        c.publish({"still": "here"})
        assert c.message()["data"] == {"still": "here"}
    # the channel is usable again, and its presence is empty of the dropped users
    with Sock(base_url, api_a.token("dave"), ch) as d:
        assert d.presence == [{"id": "dave", "name": None}]
        d.publish({"n": 1})


def test_close_channel_sends_close_frame_with_code(server: Any, api_a: Api, base_url: str) -> None:
    ch = uniq()
    a = Sock(base_url, api_a.token("alice"), ch)
    server.close_channel(ch, code=1001)
    assert _ending(a) == ("close", 1001)
    with Sock(base_url, api_a.token("erin"), ch) as e:
        assert e.presence == [{"id": "erin", "name": None}]
