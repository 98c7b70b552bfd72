"""Shared load-generation helpers for the server benchmarks (aiohttp clients)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
from typing import Any, Dict, List

import aiohttp
import requests
from aiohttp import web


def mint(base_url: str, key: str, user_id: str) -> str:
    """A WebSocket token for ``user_id``."""
    r = requests.post(
        f"{base_url}/edge/realtime/token", params={"key": key}, json={"user_id": user_id}
    )
    r.raise_for_status()
    return str(r.json()["token"])


async def open_sockets(
    session: aiohttp.ClientSession, urls: List[str]
) -> List[aiohttp.ClientWebSocketResponse]:
    """Open one socket per URL, a few at a time."""
    sem = asyncio.Semaphore(20)

    async def one(url: str) -> aiohttp.ClientWebSocketResponse:
        async with sem:
            return await session.ws_connect(url, max_msg_size=0)

    return list(await asyncio.gather(*(one(u) for u in urls)))


class BareBroadcastServer:
    """The baseline: an aiohttp app whose only work is a broadcast loop.

    Sockets opened with ``?role=sub`` listen; every text frame from a
    ``?role=pub`` socket is sent to each listener with ``await send_str``.
    With ``ack=True`` every socket instead answers each frame it sends with
    an ack and an echo, like a publish with no database behind it.
    """

    def __init__(self, ack: bool = False) -> None:
        self.ack = ack
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event
        self._thread = threading.Thread(target=self._run, name="bare-broadcast", daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        subs: List[web.WebSocketResponse] = []

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(max_msg_size=0)
            await ws.prepare(request)
            if self.ack:
                await ws.send_str('{"action":"connected"}')
                await ws.send_str('{"action":"subscribed"}')
                async for msg in ws:
                    data = json.dumps(json.loads(msg.data)["data"])
                    await ws.send_str('{"action":"published","event":"published","id":1}')
                    await ws.send_str('{"action":"message","event":"message","data":%s}' % data)
            elif request.query.get("role") == "sub":
                subs.append(ws)
                async for _ in ws:
                    pass
                subs.remove(ws)
            else:
                async for msg in ws:
                    for sub in list(subs):
                        await sub.send_str(msg.data)
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> BareBroadcastServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def runs_text(values: List[float]) -> str:
    """Every round's figure, for the line that reports their median."""
    return ", ".join(f"{v:,.0f}" for v in values)


def machine_line() -> str:
    """Where the figures were measured."""
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()}"
    )


def load_args(raw: str) -> Dict[str, Any]:
    """The load process's arguments, read from stdin when ``raw`` is ``-``."""
    return dict(json.loads(sys.stdin.read() if raw == "-" else raw))


def run_load(script: str, args: Dict[str, Any]) -> Dict[str, Any]:
    """Run ``script --load JSON`` in a child process; its JSON result.

    The load runs in its own process so the server under test and the
    clients don't share one interpreter lock.
    """
    # Arguments travel on stdin: they hold tokens, which don't belong in `ps`.
    out = subprocess.run(
        [sys.executable, script, "--load", "-"],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"load process failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
