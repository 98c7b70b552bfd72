"""Compressed frames: a few KB on the wire must not buy seconds of the server's time.

With permessage-deflate, 250 frames of about 1 KB, each inflating to a
megabyte of ``[0,0,…]``, once held the event loop for 6-10 s: aiohttp
inflates on the loop and hands a socket's queued frames over back to back,
and each was parsed before being refused as too large. Every other tenant
waited. The server now declines compression, refuses a frame far over the
payload limit without parsing it, and closes a frame over its read limit
(or a compressed frame it never agreed to) before reading it.

Each test runs the server in a child process, so the attacker's client does
not share the server's interpreter lock, and another tenant reads history
throughout, timing each answer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
import zlib
from base64 import b64encode
from typing import Any, Iterator, List, Tuple

import aiohttp
import pytest
import requests

from ._proc import ServerProcess

AIOHTTP_VERSION = tuple(int(p) for p in aiohttp.__version__.split(".")[:2])

KEY_A = "ka_deflate_7e6d5c4b3a29"
KEY_B = "kb_deflate_1a2b3c4d5e6f"
MIB = 1 << 20
#: The issue's attack: 250 frames, each about 1 KB compressed and 1 MiB inflated.
FRAMES = 250
#: JSON that is slow to parse for its size: half a million list items.
SLOW_JSON = '{"action":"publish","data":[' + ",".join(["0"] * ((MIB - 100) // 2)) + "]}"
#: The other tenant's worst history latency allowed during the attack.
LATENCY_GOAL_S = 2.0


class HistoryProbe:
    """Another tenant reading history in a loop, timing each answer."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {KEY_B}"
        r = self.http.post(base_url + "/edge/realtime", json={"channel": "b", "data": 1}, timeout=5)
        assert r.status_code == 200, r.text
        self.latencies: List[float] = []
        self.failures: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                r = self.http.get(self.base_url + "/edge/realtime/history?channel=b", timeout=30)
            except requests.RequestException as e:
                self.failures.append(repr(e))
                continue
            self.latencies.append(time.monotonic() - started)
            if r.status_code != 200:
                self.failures.append(r.text)
            self._stop.wait(0.02)

    def __enter__(self) -> HistoryProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(40)

    def worst(self) -> float:
        assert self.latencies and not self.failures, self.failures[:3]
        return max(self.latencies)


@pytest.fixture(scope="module")
def sp() -> Iterator[ServerProcess]:
    with ServerProcess(["--key", KEY_A, "--key", KEY_B, "--provision"]) as proc:
        yield proc


def token(sp: ServerProcess, user: str = "mallory") -> str:
    r = requests.post(
        sp.base_url + "/edge/realtime/token",
        json={"user_id": user},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _attack(url: str) -> Tuple[int, List[str]]:
    """Open a socket offering deflate (as browsers do), send the frames, read the answers."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, compress=15, max_msg_size=0) as ws:
            negotiated = ws.compress
            for _ in range(2):  # connected, subscribed
                await ws.receive(timeout=10)
            for _ in range(FRAMES):
                await ws.send_str(SLOW_JSON)
            answers: List[str] = []
            while len(answers) < FRAMES:
                msg = await ws.receive(timeout=60)
                assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, len(answers))
                answers.append(msg.data)
            return negotiated, answers


def test_compressed_megabyte_frames_do_not_stall_another_tenant(sp: ServerProcess) -> None:
    url = sp.base_url.replace("http", "ws", 1) + f"/edge/realtime?token={token(sp)}&channel=a"
    with HistoryProbe(sp.base_url) as probe:
        time.sleep(0.2)  # a few answers before the attack, for the baseline
        started = time.monotonic()
        negotiated, answers = asyncio.run(_attack(url))
        took = time.monotonic() - started
    worst = probe.worst()
    print(
        f"{FRAMES} frames of {len(SLOW_JSON):,} bytes, deflate negotiated: {bool(negotiated)};"
        f" answered in {took:.2f}s; other tenant's history: {len(probe.latencies)} reads,"
        f" worst {worst * 1000:.0f} ms"
    )
    # Every frame got its answer, in order, on a socket that stayed open.
    assert all(a.startswith('{"error":"Message too large: ') for a in answers), answers[:2]
    assert worst < LATENCY_GOAL_S, f"another tenant waited {worst:.2f}s"
    assert sp.alive()


def _handshake(sp: ServerProcess, extensions: str) -> Tuple[socket.socket, bytes, bytes]:
    """A raw WebSocket handshake offering ``extensions``.

    :returns: the socket, the 101's head, and the frame bytes read after it.
    """
    host, port = sp.host_port
    sock = socket.create_connection((host, port), timeout=10)
    key = b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /edge/realtime?token={token(sp)}&channel=bomb HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else "")
            + "\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, head, rest


def _frame(payload: bytes, rsv1: bool = False, declared: int = -1) -> bytes:
    """A masked client text frame; ``declared`` overrides the length in its header."""
    length = len(payload) if declared < 0 else declared
    first = 0x80 | (0x40 if rsv1 else 0) | 0x1
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _close_code(sock: socket.socket, buf: bytes, deadline_s: float = 10.0) -> int:
    """Read server frames (``buf`` holds those already read) until its close frame; its code."""
    sock.settimeout(deadline_s)
    while True:
        while len(buf) >= 2:
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            offset = 2
            if length == 126:
                (length,), offset = struct.unpack("!H", buf[2:4]), 4
            elif length == 127:
                (length,), offset = struct.unpack("!Q", buf[2:10]), 10
            if len(buf) < offset + length:
                break
            payload, buf = buf[offset : offset + length], buf[offset + length :]
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])
        chunk = sock.recv(65536)
        assert chunk, f"closed without a close frame after {buf[-200:]!r}"
        buf += chunk


def _bomb() -> bytes:
    """A raw-deflate payload of about 100 KB that inflates to 100 MiB."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = z.compress(b'{"action":"publish","data":"' + b"x" * (100 * MIB) + b'"}')
    return (body + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_deflate_is_declined_and_a_deflate_bomb_is_refused_uninflated(sp: ServerProcess) -> None:
    sock, _, rest = _handshake(sp, "permessage-deflate; client_max_window_bits")
    with sock:
        rss_before = sp.rss_bytes()
        sock.sendall(_frame(_bomb(), rsv1=True))
        # RSV1 without the extension agreed is a protocol error (RFC 6455 §5.2).
        assert _close_code(sock, rest) == 1002
    assert sp.rss_bytes() - rss_before < 16 * MIB
    with HistoryProbe(sp.base_url) as probe:
        time.sleep(0.1)
    assert probe.worst() < LATENCY_GOAL_S


def test_the_handshake_answer_agrees_to_no_extension(sp: ServerProcess) -> None:
    sock, head, _ = _handshake(sp, "permessage-deflate; client_max_window_bits")
    sock.close()
    assert b"sec-websocket-extensions" not in head.lower(), head
    # And as aiohttp's client sees it: compress is 0 when declined.
    url = sp.base_url.replace("http", "ws", 1) + f"/edge/realtime?token={token(sp)}&channel=c"

    async def negotiated() -> int:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, compress=15) as ws:
                return int(ws.compress)

    assert asyncio.run(negotiated()) == 0


def test_a_frame_over_the_read_limit_is_closed_with_1009(sp: ServerProcess) -> None:
    sock, _, rest = _handshake(sp, "")
    with sock:
        payload = b'{"action":"publish","data":"' + b"x" * (2 * MIB) + b'"}'
        sock.sendall(_frame(payload))
        assert _close_code(sock, rest) == 1009


@pytest.mark.skipif(
    AIOHTTP_VERSION < (3, 14),
    reason="aiohttp before 3.14 reads a frame whole before refusing it (docs/security.md)",
)
def test_a_frame_over_the_read_limit_is_refused_at_its_header(sp: ServerProcess) -> None:
    sock, _, rest = _handshake(sp, "")
    with sock:
        rss_before = sp.rss_bytes()
        # Declares 64 MiB and sends only its first bytes: refused at its header.
        sock.sendall(_frame(b'{"action":"publish","data":"', declared=64 * MIB))
        assert _close_code(sock, rest) == 1009
    assert sp.rss_bytes() - rss_before < 16 * MIB
