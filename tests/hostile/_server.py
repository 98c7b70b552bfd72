"""A server that speaks the spec's HTTP and socket protocol, and misbehaves on request.

:class:`HostileServer` runs aiohttp on its own event loop thread, on a free
loopback port. By default it is a small, correct edge API: an edge session,
connection tokens, HTTP publish, history, the anchor SQL query,
provisioning, and a realtime socket that sends ``connected`` then
``subscribed``, acks publishes and broadcasts them with ids.

A test makes it misbehave through knobs, each ``None`` (the correct
behaviour) or an ``async`` callable that answers instead:

* ``on_token``, ``on_history``, ``on_sql``, ``on_session``,
  ``on_http_publish``: ``(request)`` → an aiohttp response, or ``None`` to
  answer correctly after all;
* ``on_upgrade``: ``(request)`` → a response, before any handshake (for
  trickled or refused upgrades);
* ``on_subscribed``: ``(ws, server)`` run right after ``subscribed`` (junk
  frames, floods, stalls); the normal read loop follows;
* ``on_publish``: ``(ws, frame)`` → True when it answered the publish itself
  (a lost ack), False for the normal ack and broadcast.

Like the hosted API, it does not deduplicate ``Idempotency-Key`` and does
not say it does; ``HostileServer(idempotent=True)`` does both, as the local
server does (the ``Idempotent-Publish`` header on every answer).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

from aiohttp import web

KEY = "coh_hostile_k3y_s3cr3t"

Knob = Optional[Callable[..., Awaitable[Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200, **headers: str) -> web.Response:
    """A JSON answer with any body, shape checked by nobody."""
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def accept_key(request: web.Request) -> str:
    """The ``Sec-WebSocket-Accept`` value for this upgrade request."""
    key = request.headers.get("Sec-WebSocket-Key", "")
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def raw_on_first_socket(head: bytes, chunk: bytes = b"", count: int = 0, step: float = 0.0) -> Any:
    """An ``on_subscribed`` knob writing raw bytes on the first socket only.

    ``head`` goes out at once, then ``chunk`` ``count`` times, every ``step``
    seconds, while the connection is open (a trickle, or a flood). Later
    sockets (the client's reconnects) are served normally.
    """

    async def write(ws: web.WebSocketResponse, server: HostileServer) -> None:
        if server.hits["socket"] > 1:
            return
        transport = ws._req.transport  # type: ignore[attr-defined]
        transport.write(head)
        for _ in range(count):
            if transport.is_closing():
                return
            transport.write(chunk)
            await asyncio.sleep(step)

    return write


class HostileServer:
    """The edge API on loopback, with knobs to misbehave; a context manager."""

    def __init__(self, key: str = KEY, idempotent: bool = False) -> None:
        self.key = key
        self.idempotent = idempotent
        #: HTTP publish answers by Idempotency-Key (with ``idempotent``).
        self.replays: Dict[str, Dict[str, Any]] = {}
        self.rows: List[Dict[str, Any]] = []
        self.sockets: List[web.WebSocketResponse] = []
        self.hits: Dict[str, int] = {}
        self.on_token: Knob = None
        self.on_history: Knob = None
        self.on_sql: Knob = None
        self.on_session: Knob = None
        self.on_http_publish: Knob = None
        self.on_upgrade: Knob = None
        self.on_subscribed: Knob = None
        self.on_publish: Knob = None
        #: Entries added to every ``subscribed`` frame's presence (any JSON).
        self.presence_extra: List[Any] = []
        self._ids = itertools.count(1)
        self._tokens: Dict[str, Dict[str, Any]] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: Optional[web.AppRunner] = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-server")
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> HostileServer:
        """Listen on a free loopback port; returns once it accepts connections."""
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application()
        if self.idempotent:
            app.on_response_prepare.append(self._advertise)
        app.router.add_post("/edge/session", self._knob("session", self._session))
        app.router.add_post("/edge/realtime/token", self._knob("token", self._token))
        app.router.add_get("/edge/realtime/history", self._knob("history", self._history))
        app.router.add_post("/edge/realtime", self._knob("http_publish", self._publish_http))
        app.router.add_get("/edge/realtime", self._socket)
        app.router.add_post("/edge/database", self._knob("sql", self._sql))
        app.router.add_post("/api/resources/realtime", self._provision)
        app.router.add_delete("/api/resources/realtime", self._provision)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        """Cut every socket, stop listening and join the loop thread."""
        if self._runner is not None:
            try:
                self.call(self._stop(), timeout=5)
            except Exception:
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _stop(self) -> None:
        for ws in list(self.sockets):
            transport = ws._req.transport if ws._req is not None else None  # type: ignore[attr-defined]
            if transport is not None:
                transport.abort()
        assert self._runner is not None
        await self._runner.cleanup()
        # Handlers still stalling on purpose (trickles, hangs) end here.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def call(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        """Run ``coro`` on the server's loop from a test thread; return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    # -- helpers for tests ---------------------------------------------------------

    def store(self, channel: str, data: Any, event: str = "message") -> Dict[str, Any]:
        """Add a persisted row (as if published while a client was away); returns it."""
        row = {
            "id": next(self._ids),
            "channel": channel,
            "event": event,
            "action": event,
            "data": data,
            "created_at_ms": int(time.time() * 1000),
        }
        self.rows.append(row)
        return row

    def send_all(self, frame: Any) -> None:
        """Send ``frame`` (a JSON value, or a str sent as is) to every open socket."""
        text = frame if isinstance(frame, str) else json.dumps(frame)

        async def send() -> None:
            for ws in list(self.sockets):
                if not ws.closed:
                    await ws.send_str(text)

        self.call(send())

    def drop_all(self) -> None:
        """Cut every socket at the TCP level (a network drop)."""

        async def drop() -> None:
            for ws in list(self.sockets):
                transport = ws._req.transport if ws._req is not None else None  # type: ignore[attr-defined]
                if transport is not None:
                    transport.abort()

        self.call(drop())

    def _count(self, name: str) -> None:
        self.hits[name] = self.hits.get(name, 0) + 1

    # -- HTTP endpoints --------------------------------------------------------------

    def _knob(self, name: str, correct: Handler) -> Handler:
        """``correct``, counted in :attr:`hits`, unless the test's ``on_<name>`` answers."""

        async def handle(request: web.Request) -> web.StreamResponse:
            self._count(name)
            knob = getattr(self, f"on_{name}")
            if knob is not None:
                answer = await knob(request)
                if answer is not None:
                    return answer  # type: ignore[no-any-return]
            return await correct(request)

        return handle

    async def _session(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("key") != self.key:
            return json_response({"error": {"code": 401, "message": "bad key"}}, 401)
        return json_response({"token": "bearer-" + self.key[-4:], "expires_in": 3600})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        token = f"tok{len(self._tokens)}"
        self._tokens[token] = {"id": str(body.get("user_id")), "name": body.get("name")}
        return json_response({"token": token, "expires_in": body.get("ttl", 300)})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        channel = request.query["channel"]
        after = int(request.query.get("after", 0))
        limit = int(request.query.get("limit", 50))
        rows = [r for r in self.rows if r["channel"] == channel and r["id"] > after]
        return json_response({"messages": rows[:limit]})

    async def _sql(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        channel = (body.get("params") or [None])[0]
        ids = [r["id"] for r in self.rows if r["channel"] == channel]
        return json_response(
            {"results": [{"last_id": max(ids, default=0)}], "success": True, "meta": {}}
        )

    async def _provision(self, request: web.Request) -> web.StreamResponse:
        self._count("provision")
        return json_response({"success": True, "resource": "realtime"})

    async def _advertise(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers["Idempotent-Publish"] = "86400"

    async def publish_http(self, request: web.Request) -> Dict[str, Any]:
        """Commit an HTTP publish (once per Idempotency-Key with ``idempotent``); its answer."""
        key = request.headers.get("Idempotency-Key") if self.idempotent else None
        if key is not None and key in self.replays:
            return self.replays[key]
        body = await request.json()
        row = await self._commit(body["channel"], body.get("event", "message"), body.get("data"))
        answer = {k: row[k] for k in ("channel", "event", "created_at_ms", "id")}
        answer["action"] = row["action"]
        if key is not None:
            self.replays[key] = answer
        return answer

    async def _publish_http(self, request: web.Request) -> web.StreamResponse:
        return json_response(await self.publish_http(request))

    async def _commit(self, channel: str, event: str, data: Any) -> Dict[str, Any]:
        row = self.store(channel, data, event)
        frame = json.dumps({**row})
        for ws in list(self.sockets):
            if not ws.closed and getattr(ws, "channel", None) == channel:
                try:
                    await ws.send_str(frame)
                except ConnectionError:
                    pass  # that socket is going; the row is committed all the same
        return row

    # -- the socket -------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        self._count("socket")
        if self.on_upgrade is not None:
            answer = await self.on_upgrade(request)
            if answer is not None:
                return answer  # type: ignore[no-any-return]
        user = self._tokens.get(request.query.get("token", ""))
        if user is None:
            return json_response({"error": {"code": 401, "message": "bad token"}}, 401)
        channel = request.query.get("channel", "")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        ws.channel = channel  # type: ignore[attr-defined]
        self.sockets.append(ws)
        try:
            await ws.send_json({"action": "connected", "channel": channel})
            presence = [user, *self.presence_extra]
            await ws.send_json({"action": "subscribed", "channel": channel, "presence": presence})
            if self.on_subscribed is not None:
                await self.on_subscribed(ws, self)
            async for msg in ws:
                if msg.type != 1:  # WSMsgType.TEXT
                    continue
                frame = json.loads(msg.data)
                if self.on_publish is not None and await self.on_publish(ws, frame):
                    continue
                event = frame.get("event", "message")
                if frame.get("persist", True):
                    row = await self._commit(channel, event, frame.get("data"))
                else:
                    row = {"channel": channel, "event": event, "action": event,
                           "data": frame.get("data"), "created_at_ms": int(time.time() * 1000)}
                    for other in list(self.sockets):
                        if not other.closed and getattr(other, "channel", None) == channel:
                            await other.send_json(row)
                ack = {"action": "published", "event": "published", "channel": channel,
                       "created_at_ms": row["created_at_ms"]}
                if "id" in row:
                    ack["id"] = row["id"]
                await ws.send_json(ack)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws
