"""Fan-out: 1 publisher → 100 subscriber sockets, N messages.

Measures deliveries/s through the local server, and through a bare aiohttp
broadcast loop serving the same kind of sockets, in the same run; prints the
ratio (goal: ≥ 0.6x). Messages are published with ``persist: false`` so this
measures fan-out, not SQLite (see server_persist.py for that).

``--growth 1,10,100,1000`` measures the same at each channel size instead,
with about ``--deliveries`` deliveries per run (messages = deliveries / size,
from 200 to 10,000), and prints deliveries/s and µs per delivery for both
servers: the cost per delivery should stay flat as a channel grows. There
all subscribers share one user, so the sockets opening don't send each
other a join (a thousand distinct users would queue a million join frames
before the first message).

    python benchmarks/server_fanout.py [--subscribers 100] [--messages 2000]
    python benchmarks/server_fanout.py --growth 1,10,100,1000 [--deliveries 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any, Dict, List, Tuple

import aiohttp
from _child_server import raise_nofile
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
    raise_nofile()
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
        cpu = _cpu_seconds(args.get("server_pid"))
        started = time.perf_counter()
        for _ in range(n):
            await pub.send_str(frame)
        await asyncio.wait_for(done.wait(), timeout=300)
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(args.get("server_pid")) - cpu
        await asyncio.gather(*readers)
        for ws in [*subs, pub]:
            await ws.close()
    return {"deliveries": n * len(subs), "seconds": elapsed, "server_cpu": cpu}


def _cpu_seconds(pid: Any) -> float:
    """CPU time (user + system) process ``pid`` has used, from /proc; 0 without a pid."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ours(subscribers: int, messages: int, one_user: bool = False) -> Dict[str, Any]:
    key = "k_bench"
    with LocalServer(keys=[key], provision=True) as srv:
        ws_base = srv.ws_url + "/edge/realtime"
        shared = mint(srv.base_url, key, "sub") if one_user else ""
        sub_urls = [
            f"{ws_base}?channel=bench&token={shared or mint(srv.base_url, key, f'u{i}')}"
            for i in range(subscribers)
        ]
        pub_url = f"{ws_base}?channel=bench&token={mint(srv.base_url, key, 'publisher')}"
        r = run_load(
            __file__,
            {
                "messages": messages,
                "sub_urls": sub_urls,
                "pub_url": pub_url,
                "greeting": 2,
                "server_pid": os.getpid(),  # the server runs in this process
            },
        )
    return r


def _bare(subscribers: int, messages: int, one_user: bool = False) -> Dict[str, Any]:
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
                "server_pid": os.getpid(),
            },
        )
    finally:
        bare_srv.stop()
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--growth", help="channel sizes, e.g. 1,10,100,1000")
    parser.add_argument("--deliveries", type=int, default=100_000, help="per run, with --growth")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(load_args(args.load)))))
        return
    raise_nofile()  # the server under test runs in this process
    if args.growth:
        _growth([int(x) for x in args.growth.split(",")], args.deliveries, args.rounds)
        return

    ours: List[float] = []
    bare: List[float] = []
    for r in range(args.rounds):
        # Alternate which goes first so drift on a shared machine hits both.
        pair = [(ours, _ours), (bare, _bare)]
        for results, run in pair if r % 2 == 0 else pair[::-1]:
            r = run(args.subscribers, args.messages)
            results.append(r["deliveries"] / r["seconds"])
    o, b = statistics.median(ours), statistics.median(bare)
    print(machine_line())
    print(
        f"subscribers={args.subscribers} messages={args.messages} "
        f"deliveries per run={args.subscribers * args.messages} rounds={args.rounds}"
    )
    print(f"cohrt-sync server : {o:12,.0f} deliveries/s median  ({runs_text(ours)})")
    print(f"bare aiohttp loop : {b:12,.0f} deliveries/s median  ({runs_text(bare)})")
    print(f"ratio of medians  : {o / b:.2f}x  (goal >= 0.6x)")


def _growth(sizes: List[int], deliveries: int, rounds: int) -> None:
    rates: Dict[Tuple[str, int], List[float]] = {}
    cpu: Dict[Tuple[str, int], List[float]] = {}
    for r in range(rounds):
        for size in sizes:
            messages = min(10_000, max(200, deliveries // size))
            pair = [("ours", _ours), ("bare", _bare)]
            for name, run in pair if r % 2 == 0 else pair[::-1]:
                got = run(size, messages, True)
                rates.setdefault((name, size), []).append(got["deliveries"] / got["seconds"])
                cpu.setdefault((name, size), []).append(got["server_cpu"] * 1e6 / got["deliveries"])
    print(machine_line())
    print(f"fan-out growth, ~{deliveries:,} deliveries per run, {rounds} alternating rounds")
    print("deliveries/s (every round); server CPU µs per delivery, median (min-max)")
    for size in sizes:
        messages = min(10_000, max(200, deliveries // size))
        cols = []
        for name in ("ours", "bare"):
            c, d = cpu[(name, size)], rates[(name, size)]
            cols.append(
                f"{statistics.median(d):9,.0f}/s ({runs_text(d)})"
                f" CPU {statistics.median(c):5.1f} µs ({min(c):.1f}-{max(c):.1f})"
            )
        ratio = statistics.median(rates[("ours", size)]) / statistics.median(rates[("bare", size)])
        print(f"{size:>5} subscribers, {messages:>6,} msgs")
        print(f"    cohrt-sync server : {cols[0]}")
        print(f"    bare aiohttp loop : {cols[1]}   ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
