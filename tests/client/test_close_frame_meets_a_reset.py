"""The server's close frame is kept when the client's reply to it meets a reset.

The local server (aiohttp, closing a socket another task reads) closes its
TCP connection as soon as its close frame is out. A frame the client sends in
that instant reaches a closed socket, whose kernel answers with a reset, and
websocket-client's reply to the close frame then fails. Before, that failure
was raised from the read and the close frame, with its code and reason (a
pause's 4003), was lost: the channel reconnected instead of stopping.
Real server, real sockets; the TCP states are read from the kernel.
"""

from __future__ import annotations

import json
import socket
import struct
import urllib.parse
from typing import Any

import pytest
import websocket

import cohrt_sync
from cohrt_sync import _ws

from .conftest import KEY, wait_until

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_INFO"), reason="reads the connection's TCP state (Linux)"
)

TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]


def test_a_close_frame_whose_reply_meets_a_reset_is_still_returned(
    server: Any, channel_name: str
) -> None:
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as client:
        token = client.mint_token("u").token
    url = server.base_url.replace("http", "ws", 1) + "/edge/realtime?" + urllib.parse.urlencode(
        {"token": token, "channel": channel_name}
    )
    ws = _ws.new_socket(1 << 20)
    ws.connect(url, timeout=10, suppress_origin=True)
    try:
        assert json.loads(ws.recv())["action"] == "connected"
        assert json.loads(ws.recv())["action"] == "subscribed"
        assert server.close_channel(channel_name, code=4001) == 1
        # The server's close frame and its FIN are in, unread.
        wait_until(lambda: _tcp_state(ws.sock) == TCP_CLOSE_WAIT, interval=0.005)
        publish = {"action": "publish", "event": "message", "data": {"n": 1}}
        frame = websocket.ABNF.create_frame(json.dumps(publish), websocket.ABNF.OPCODE_TEXT)
        ws.sock.sendall(frame.format())
        # The server's socket was closed: the kernel answers with a reset.
        wait_until(lambda: _tcp_state(ws.sock) == TCP_CLOSE, interval=0.005)
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", data[:2])[0] == 4001
    finally:
        ws.shutdown()
