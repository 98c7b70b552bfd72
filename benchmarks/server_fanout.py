"""Fan-out: 1 publisher → 100 subscriber sockets, N messages.

Measures deliveries/s through the local server, and through a bare aiohttp
broadcast loop serving the same kind of sockets, in the same run; prints the
ratio (goal: ≥ 0.6x). Messages are published with ``persist: false`` so this
measures fan-out, not SQLite (see server_persist.py for that).

    python benchmarks/server_fanout.py [--subscribers 100] [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any, Dict, List

import aiohttp
from _load import (
    BareBroadcastServer,
    load_args,
    machine_line,
    mint,
    open_sockets,
    run_load,
    runs_text,
)

from cohrt_sync.server import LocalServer


async def _load(args: Dict[str, Any]) -> Dict[str, Any]:
    n, subs_urls, pub_url = args["messages"], args["sub_urls"], args["pub_url"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        subs = await open_sockets(session, subs_urls)
        pub = await session.ws_connect(pub_url, max_msg_size=0)
        greeting = args["greeting"]
        for ws in [*subs, pub]:
            for _ in range(greeting):  # connected + subscribed (+ joins)
                await ws.receive()
        # Joins of later sockets reach earlier ones; skip anything that isn't ours.
        done = asyncio.Event()
        remaining = len(subs)

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal remaining
            got = 0
            while got < n:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"socket ended early: {msg.type}")
                if '"bench"' in msg.data:
                    got += 1
            remaining -= 1
            if remaining == 0:
                done.set()

        readers = [asyncio.ensure_future(drain(ws)) for ws in subs]
        frame = json.dumps(
            {
                "action": "publish",
                "event": "bench",
                "data": {"i": 0, "pad": "x" * 64},
                "persist": False,
            }
        )
        started = time.perf_counter()
        for _ in range(n):
            await pub.send_str(frame)
        await asyncio.wait_for(done.wait(), timeout=300)
        elapsed = time.perf_counter() - started
        await asyncio.gather(*readers)
        for ws in [*subs, pub]:
            await ws.close()
    return {"deliveries": n * len(subs), "seconds": elapsed}


def _ours(subscribers: int, messages: int) -> float:
    key = "k_bench"
    with LocalServer(keys=[key], provision=True) as srv:
        ws_base = srv.ws_url + "/edge/realtime"
        sub_urls = [
            f"{ws_base}?channel=bench&token={mint(srv.base_url, key, f'u{i}')}"
            for i in range(subscribers)
        ]
        pub_url = f"{ws_base}?channel=bench&token={mint(srv.base_url, key, 'publisher')}"
        r = run_load(
            __file__,
            {"messages": messages, "sub_urls": sub_urls, "pub_url": pub_url, "greeting": 2},
        )
    return float(r["deliveries"] / r["seconds"])


def _bare(subscribers: int, messages: int) -> float:
    bare_srv = BareBroadcastServer().start()
    try:
        url = f"ws://127.0.0.1:{bare_srv.port}/ws"
        r = run_load(
            __file__,
            {
                "messages": messages,
                "sub_urls": [url + "?role=sub"] * subscribers,
                "pub_url": url + "?role=pub",
                "greeting": 0,
            },
        )
    finally:
        bare_srv.stop()
    return float(r["deliveries"] / r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(load_args(args.load)))))
        return

    ours: List[float] = []
    bare: List[float] = []
    for r in range(args.rounds):
        # Alternate which goes first so drift on a shared machine hits both.
        pair = [(ours, _ours), (bare, _bare)]
        for results, run in pair if r % 2 == 0 else pair[::-1]:
            results.append(run(args.subscribers, args.messages))
    o, b = statistics.median(ours), statistics.median(bare)
    print(machine_line())
    print(
        f"subscribers={args.subscribers} messages={args.messages} "
        f"deliveries per run={args.subscribers * args.messages} rounds={args.rounds}"
    )
    print(f"cohrt-sync server : {o:12,.0f} deliveries/s median  ({runs_text(ours)})")
    print(f"bare aiohttp loop : {b:12,.0f} deliveries/s median  ({runs_text(bare)})")
    print(f"ratio of medians  : {o / b:.2f}x  (goal >= 0.6x)")


if __name__ == "__main__":
    main()
