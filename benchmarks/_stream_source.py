"""A receive benchmark's load source: pre-serialized spec-shaped frames, at socket speed.

Run as a process of its own (``python benchmarks/_stream_source.py``); it
prints its port and serves until stdin closes. It answers just enough of the
API for a client to subscribe (a token, the catch-up anchor, empty history
pages), then streams a burst on each socket it accepts, chosen by the
channel name ``bench:<kind>:<count>:<tag>``:

* ``idless``: message frames exactly as the spec shows them, no ``id``;
* ``ids``: the same with increasing ``id``, as the local server sends them.

``/socket.io/`` speaks just enough Engine.IO 4 / Socket.IO 5 over a
WebSocket for python-socketio's sync ``Client`` to connect, then streams a
burst of ``message`` events (the count is in its ``auth``): the peer row's
reader, fed as fast as ours.

Every WebSocket frame of a burst is built before the socket is opened, with
websocket-client's own framing (``ABNF``, unmasked as a server sends), and
written to the transport in 64 KiB chunks: the source spends a few
microseconds per chunk, not per frame, so it outruns any Python reader.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Dict, List, Tuple

import websocket
from aiohttp import web

#: What a payload looks like: a short chat message.
DATA = {"text": "hello world, a typical chat message"}
#: A created_at_ms of the spec's era; each frame adds its index.
EPOCH_MS = 1_711_111_111_111
CHUNK = 64 * 1024

_bursts: Dict[Tuple[str, str, int], List[bytes]] = {}


def spec_frame(channel: str, i: int, with_id: bool) -> str:
    """One message frame as the spec shows it (plus ``id`` when ``with_id``)."""
    frame = {"action": "message", "event": "message", "channel": channel, "data": DATA,
             "created_at_ms": EPOCH_MS + i}
    if with_id:
        frame["id"] = i + 1
    return json.dumps(frame, separators=(",", ":"))


def socketio_event(i: int) -> str:
    """One Socket.IO ``message`` event carrying the same payload, as python-socketio sends it."""
    return "42" + json.dumps(["message", {**DATA, "i": i}], separators=(",", ":"))


def burst(channel: str, kind: str, count: int) -> List[bytes]:
    """``count`` frames, encoded as WebSocket frames and joined into chunks (cached)."""
    key = (channel, kind, count)
    if key not in _bursts:
        chunks: List[bytes] = []
        pending: List[bytes] = []
        size = 0
        for i in range(count):
            text = socketio_event(i) if kind == "socketio" else spec_frame(
                channel, i, kind == "ids")
            payload = text.encode()
            # fin=1, no rsv bits, text, mask=0: a server's frames are not masked.
            wire = websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_TEXT, 0, payload).format()
            pending.append(wire)
            size += len(wire)
            if size >= CHUNK:
                chunks.append(b"".join(pending))
                pending, size = [], 0
        if pending:
            chunks.append(b"".join(pending))
        _bursts.clear()  # one burst in memory at a time
        _bursts[key] = chunks
    return _bursts[key]


async def token(request: web.Request) -> web.Response:
    return web.json_response({"token": "bench-token", "expires_in": 3600})


async def database(request: web.Request) -> web.Response:
    # The client's catch-up anchor: nothing persisted before the burst.
    return web.json_response({"results": [{"last_id": 0}]})


async def history(request: web.Request) -> web.Response:
    # The id-less path reconciles against history now and then: nothing to match.
    return web.json_response({"messages": []})


async def stream(request: web.Request, chunks: List[bytes]) -> None:
    """Write a burst's chunks straight to the transport, as fast as it drains."""
    transport = request.transport
    assert transport is not None
    # aiohttp's per-message send would make the source, not the reader, the
    # bottleneck.
    transport.set_write_buffer_limits(high=4 * CHUNK)
    for chunk in chunks:
        if transport.is_closing():
            break
        transport.write(chunk)
        if transport.get_write_buffer_size() > 4 * CHUNK:
            await request.protocol._drain_helper()  # type: ignore[attr-defined]


async def socketio(request: web.Request) -> web.WebSocketResponse:
    """Engine.IO open, Socket.IO connect, then a burst of events."""
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    await ws.send_str('0{"sid":"bench","upgrades":[],"pingInterval":25000,'
                      '"pingTimeout":60000,"maxPayload":1000000}')
    async for msg in ws:
        if isinstance(msg.data, str) and msg.data.startswith("40"):
            auth = json.loads(msg.data[2:] or "{}")
            await ws.send_str('40{"sid":"bench-socket"}')
            await stream(request, burst("socketio", "socketio", int(auth.get("n", 0))))
        elif msg.data == "2":
            await ws.send_str("3")
    return ws


async def realtime(request: web.Request) -> web.WebSocketResponse:
    channel = request.query.get("channel", "")
    parts = channel.split(":")
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    await ws.send_str(json.dumps({"action": "connected", "channel": channel}))
    await ws.send_str(json.dumps({"action": "subscribed", "channel": channel, "presence": []}))
    if len(parts) == 4 and parts[0] == "bench" and parts[1] in ("idless", "ids"):
        await stream(request, burst(channel, parts[1], int(parts[2])))
    async for _ in ws:  # pongs and whatever the reader sends, until it closes
        pass
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_post("/edge/realtime/token", token)
    app.router.add_post("/edge/database", database)
    app.router.add_get("/edge/realtime/history", history)
    app.router.add_get("/edge/realtime", realtime)
    app.router.add_get("/socket.io/", socketio)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    done = asyncio.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)),
                     daemon=True).start()
    loop.run_until_complete(done.wait())
    loop.run_until_complete(runner.cleanup())


if __name__ == "__main__":
    main()
