"""Persisted publishing: 50 concurrent publishers, batched commits vs one commit each.

Each publisher is a WebSocket that publishes persisted messages one after
another, waiting for each ``published`` ack (which the server sends only
after the row is committed). The same load runs against a server that commits
concurrent publishes together (the default) and one that commits each message
on its own (``batch_commits=False``), in the same run; prints msgs/s and the
ratio (goal: ≥ 5x). Both use SQLite in WAL mode with ``synchronous=FULL``.
The same server with ``persist: false`` publishes is what a user compares
against (goal: persisted ≥ 0.7x of it).
``--tier pro`` (or any tier with a publish cap) adds the durable count of
every publish, written in its batch's transaction (see ``cohrt_sync/server/usage.py``).

    python benchmarks/server_persist.py [--publishers 50] [--messages 100] [--tier pro]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from typing import Any, Dict, List

import aiohttp
import requests
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
    per = args["messages"]
    persist = "" if args.get("persist", True) else ',"persist":false'
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        pubs = await open_sockets(session, args["urls"])
        for ws in pubs:
            await ws.receive()  # connected
            await ws.receive()  # subscribed

        async def publish(ws: aiohttp.ClientWebSocketResponse, n: int) -> int:
            # The load is kept cheap (substring checks, not a JSON parse per
            # frame) so that the server, not this process, is what's measured.
            acks = 0
            for i in range(n):
                await ws.send_str(
                    '{"action":"publish","data":{"i":%d,"pad":"%s"}%s}' % (i, "x" * 100, persist)
                )
                while True:  # skip echoes, and joins of sockets that opened later
                    data = (await ws.receive()).data
                    if '"action":"published"' in data:
                        acks += 1
                        break
                    if data.startswith('{"error"'):
                        raise RuntimeError(data)
            return acks

        started = time.perf_counter()
        acked = sum(await asyncio.gather(*(publish(ws, per) for ws in pubs)))
        elapsed = time.perf_counter() - started
        for ws in pubs:
            await ws.close()
    return {"acked": acked, "seconds": elapsed}


def _run(
    batch: bool, publishers: int, messages: int, tier: str, persist: bool = True
) -> Dict[str, Any]:
    key = "k_bench"
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalServer(
            keys=[key], provision=True, data_dir=tmp, batch_commits=batch, tier=tier
        ) as srv,
    ):
        # Each publisher on its own channel: the cost measured is the commit,
        # not fan-out to the other publishers.
        urls = [
            f"{srv.ws_url}/edge/realtime?channel=persist-{i}"
            f"&token={mint(srv.base_url, key, f'p{i}')}"
            for i in range(publishers)
        ]
        result = run_load(__file__, {"urls": urls, "messages": messages, "persist": persist})
        rows = requests.post(
            f"{srv.base_url}/edge/database",
            params={"key": key},
            json={"query": "SELECT count(*) AS n FROM realtime_messages"},
        ).json()["results"][0]["n"]
        if not persist:
            rows += result["acked"]  # acknowledged, and rightly not stored
        if rows != result["acked"] or rows != publishers * messages:
            raise SystemExit(f"lost messages: {rows} rows for {result['acked']} acks")
        return result


def _ceiling(publishers: int, messages: int) -> Dict[str, Any]:
    # The ceiling of any batching gain: the same load against a server that
    # acks and echoes with no database at all.
    bare = BareBroadcastServer(ack=True).start()
    try:
        url = f"ws://127.0.0.1:{bare.port}/ws"
        return run_load(__file__, {"urls": [url] * publishers, "messages": messages})
    finally:
        bare.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publishers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=100, help="per publisher")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--tier", default="unlimited", help="the server's tier")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(load_args(args.load)))))
        return
    rates: Dict[str, List[float]] = {"batched": [], "single": [], "live": [], "ceiling": []}
    runs = [
        ("batched", lambda: _run(True, args.publishers, args.messages, args.tier)),
        ("single", lambda: _run(False, args.publishers, args.messages, args.tier)),
        ("live", lambda: _run(True, args.publishers, args.messages, args.tier, persist=False)),
        ("ceiling", lambda: _ceiling(args.publishers, args.messages)),
    ]
    for r in range(args.rounds):
        # Rotate the order so drift on a shared machine hits every variant.
        k = r % len(runs)
        for name, run in runs[k:] + runs[:k]:
            result = run()
            rates[name].append(result["acked"] / result["seconds"])
    b, s, live, c = (statistics.median(rates[k]) for k in ("batched", "single", "live", "ceiling"))
    print(machine_line())
    print(
        f"publishers={args.publishers} messages each={args.messages} "
        f"total per run={args.publishers * args.messages} rounds={args.rounds} tier={args.tier}"
    )
    print(f"batched commits    : {b:10,.0f} msgs/s median  ({runs_text(rates['batched'])})")
    print(f"one commit per msg : {s:10,.0f} msgs/s median  ({runs_text(rates['single'])})")
    print(f"ratio of medians   : {b / s:.2f}x  (goal >= 5x)")
    print(f"persist: false     : {live:10,.0f} msgs/s median  ({runs_text(rates['live'])})")
    print(f"persisted / live   : {b / live:.2f}x  (goal >= 0.7x; same server, same load)")
    print(f"no database at all : {c:10,.0f} msgs/s median  ({runs_text(rates['ceiling'])})")
    print(f"batched / ceiling  : {b / c:.2f}x  (what the database and ordering cost)")


if __name__ == "__main__":
    main()
