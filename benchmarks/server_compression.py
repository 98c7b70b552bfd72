"""What permessage-deflate costs a server that fans out: CPU and memory per socket.

Browsers offer permessage-deflate on every WebSocket; aiohttp accepts it by
default (``WebSocketResponse(compress=True)``). Then every frame sent to such a
socket is deflated for that socket alone (a broadcast to N sockets is N
compressions) and each socket keeps its own deflate and inflate state. This
measures both on the bare aiohttp broadcast loop of ``_load.py`` (compression
left on), in a child process so its RSS and CPU are its own: one publisher,
``--subscribers`` sockets that offer deflate (as browsers do) against the same
number that don't (as websocket-client and the Python client), ``--messages``
chat-sized frames, in alternating rounds of the same run. The local server
declines compression (docs/server.md, "The socket"); this is the cost it saves.

    python benchmarks/server_compression.py [--subscribers 200] [--messages 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Dict, List

import aiohttp
from _child_server import ChildServer, raise_nofile
from _load import machine_line, runs_text

#: A chat message as the server sends it, about 200 bytes.
FRAME = json.dumps(
    {
        "action": "message",
        "event": "message",
        "channel": "chat:room_42",
        "data": {"text": "see you at the standup in ten minutes, bring the notes", "n": 1},
        "created_at_ms": 1711111111111,
        "id": 4242,
    }
)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(subscribers: int, messages: int, compress: int) -> Dict[str, float]:
    with ChildServer("bare") as srv:
        url = f"{srv.ws_url}/ws"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            # A few sockets first, so the interpreter's own growth is not counted.
            warm = [await session.ws_connect(url + "?role=sub") for _ in range(10)]
            rss_before = srv.rss_kib()
            subs = [
                await session.ws_connect(url + "?role=sub", compress=compress, max_msg_size=0)
                for _ in range(subscribers)
            ]
            negotiated = sum(1 for ws in subs if ws.compress)
            pub = await session.ws_connect(url + "?role=pub")
            total = len(subs) + len(warm)

            async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
                for _ in range(messages):
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise RuntimeError(f"socket ended early: {msg.type}")

            readers = [asyncio.ensure_future(drain(ws)) for ws in [*subs, *warm]]
            cpu = _cpu_seconds(srv.pid)
            started = time.perf_counter()
            for _ in range(messages):
                await pub.send_str(FRAME)
            await asyncio.wait_for(asyncio.gather(*readers), timeout=300)
            elapsed = time.perf_counter() - started
            cpu = _cpu_seconds(srv.pid) - cpu
            rss_after = srv.rss_kib()
            for ws in [*subs, *warm, pub]:
                await ws.close()
    deliveries = messages * total
    return {
        "negotiated": negotiated,
        "rate": deliveries / elapsed,
        "cpu_us": cpu * 1e6 / deliveries,
        "kib_per_socket": (rss_after - rss_before) / subscribers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    args = parser.parse_args()
    raise_nofile()
    results: Dict[int, List[Dict[str, float]]] = {0: [], 15: []}
    for r in range(args.rounds):
        order = [15, 0] if r % 2 == 0 else [0, 15]
        for compress in order:
            results[compress].append(
                asyncio.run(_round(args.subscribers, args.messages, compress))
            )
    print(machine_line())
    print(
        f"bare aiohttp broadcast loop, {args.subscribers} subscribers (+10 plain), "
        f"{args.messages} frames of {len(FRAME)} bytes, {args.rounds} alternating rounds"
    )
    med: Dict[int, Dict[str, float]] = {}
    for compress, label in ((0, "plain   "), (15, "deflate ")):
        rows = results[compress]
        med[compress] = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        m = med[compress]
        print(
            f"{label}: negotiated on {m['negotiated']:.0f} sockets; "
            f"{m['rate']:10,.0f} deliveries/s ({runs_text([row['rate'] for row in rows])}); "
            f"server CPU {m['cpu_us']:.1f} µs per delivery; "
            f"RSS {m['kib_per_socket']:.0f} KiB per socket"
        )
    print(
        f"deflate / plain: deliveries/s {med[15]['rate'] / med[0]['rate']:.2f}x, "
        f"CPU per delivery {med[15]['cpu_us'] / med[0]['cpu_us']:.2f}x, "
        f"RSS per socket {med[15]['kib_per_socket'] / max(med[0]['kib_per_socket'], 1):.1f}x"
    )


if __name__ == "__main__":
    main()
