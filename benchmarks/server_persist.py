"""Persisted publishing: 50 concurrent publishers, batched commits vs one commit each.

Each publisher is a WebSocket that publishes persisted messages one after
another, waiting for each ``published`` ack (which the server sends only
after the row is committed). The same load runs against a server that commits
concurrent publishes together (the default) and one that commits each message
on its own (``batch_commits=False``), in the same run; prints msgs/s and the
ratio (goal: ≥ 5x). Both use SQLite in WAL mode with ``synchronous=FULL``.
The same server with ``persist: false`` publishes is what a user compares
against (goal: persisted ≥ 0.7x of it).

Two rows bound what any implementation could reach here:

- raw sqlite3: the server's schema and pragmas, transactions of the rows a
  batch holds under this load (``--raw-rows``, 25), one thread, no server. A
  persisted publish waits for at least one such commit; its own CPU is what
  the database adds to every message.
- ``--stub-commit-ms MS``: the same server with the batch write replaced by a
  sleep of MS milliseconds (the interpreter lock released, no CPU, consecutive
  ids): what persisted would reach if the database cost only its latency.
``--tier pro`` (or any tier with a publish cap) adds the durable count of
every publish, written in its batch's transaction (see ``cohrt_sync/server/usage.py``).

    python benchmarks/server_persist.py [--publishers 50] [--messages 100] [--window 1]
        [--tier pro] [--stub-commit-ms 0.45]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from unittest import mock

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
from cohrt_sync.server.tenantdb import SCHEMA, TenantDB


async def _load(args: Dict[str, Any]) -> Dict[str, Any]:
    per = args["messages"]
    persist = "" if args.get("persist", True) else ',"persist":false'
    frame = '{"action":"publish","data":{"i":%d,"pad":"%s"}' + persist + "}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        pubs = await open_sockets(session, args["urls"])
        for ws in pubs:
            await ws.receive()  # connected
            await ws.receive()  # subscribed

        window = args.get("window", 1)

        async def publish(ws: aiohttp.ClientWebSocketResponse, n: int) -> int:
            # The load is kept cheap (substring checks, not a JSON parse per
            # frame) so that the server, not this process, is what's measured.
            # Each publisher keeps `window` publishes in flight (1: waits for
            # each ack before the next).
            acks = sent = 0
            while sent < min(window, n):
                await ws.send_str(frame % (sent, "x" * 100))
                sent += 1
            while acks < n:
                data = (await ws.receive()).data
                if '"action":"published"' in data:
                    acks += 1
                    if sent < n:
                        await ws.send_str(frame % (sent, "x" * 100))
                        sent += 1
                elif data.startswith('{"error"'):
                    raise RuntimeError(data)
                # anything else: echoes, and joins of sockets that opened later
            return acks

        started = time.perf_counter()
        acked = sum(await asyncio.gather(*(publish(ws, per) for ws in pubs)))
        elapsed = time.perf_counter() - started
        for ws in pubs:
            await ws.close()
    return {"acked": acked, "seconds": elapsed}


def _run(
    batch: bool,
    publishers: int,
    messages: int,
    tier: str,
    persist: bool = True,
    window: int = 1,
    stub_ms: Optional[float] = None,
) -> Dict[str, Any]:
    key = "k_bench"
    with (
        _stubbed_writes(stub_ms),
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
        result = run_load(
            __file__, {"urls": urls, "messages": messages, "persist": persist, "window": window}
        )
        rows = requests.post(
            f"{srv.base_url}/edge/database",
            params={"key": key},
            json={"query": "SELECT count(*) AS n FROM realtime_messages"},
        ).json()["results"][0]["n"]
        if stub_ms is not None:
            return result  # the stub stores nothing
        if not persist:
            rows += result["acked"]  # acknowledged, and rightly not stored
        if rows != result["acked"] or rows != publishers * messages:
            raise SystemExit(f"lost messages: {rows} rows for {result['acked']} acks")
        return result


@contextlib.contextmanager
def _stubbed_writes(stub_ms: Optional[float]) -> Iterator[None]:
    """With ``stub_ms``, a batch write sleeps that long and stores nothing."""
    if stub_ms is None:
        yield
        return
    state = {"last": 0}

    def insert_batch(self: TenantDB, rows: Sequence[Any], counts: Any = ()) -> List[int]:
        time.sleep(stub_ms / 1000)  # releases the interpreter lock, as a commit's fsync does
        first = state["last"] + 1
        state["last"] += len(rows)
        return list(range(first, state["last"] + 1))

    with mock.patch.object(TenantDB, "insert_batch", insert_batch):
        yield


def _raw_commits(rows: int, txns: int = 400) -> Dict[str, float]:
    """Raw sqlite3 alone: ``txns`` transactions of ``rows`` rows; the server's schema, pragmas."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(str(Path(tmp) / "raw.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        data = '{"i":0,"pad":"%s"}' % ("x" * 100)
        walls: List[float] = []
        cpu0 = time.thread_time()
        for t in range(txns):
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            for r in range(rows):
                # One row per channel, as the load writes them: each lands on
                # its own page of the (channel, id) index.
                db.execute(
                    "INSERT INTO realtime_messages (channel, event, data, created_at_ms)"
                    " VALUES (?, 'message', ?, ?)",
                    (f"persist-{(t * rows + r) % 50}", data, t),
                )
            db.execute("COMMIT")
            walls.append(time.perf_counter() - started)
        cpu = time.thread_time() - cpu0
        db.close()
    return {
        "wall_ms": statistics.median(walls) * 1000,
        "cpu_us_per_row": cpu / (txns * rows) * 1e6,
        "rows_per_s": rows / statistics.median(walls),
    }


def _ceiling(publishers: int, messages: int, window: int = 1) -> Dict[str, Any]:
    # The ceiling of any batching gain: the same load against a server that
    # acks and echoes with no database at all.
    bare = BareBroadcastServer(ack=True).start()
    try:
        url = f"ws://127.0.0.1:{bare.port}/ws"
        return run_load(
            __file__, {"urls": [url] * publishers, "messages": messages, "window": window}
        )
    finally:
        bare.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publishers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=100, help="per publisher")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument(
        "--window", type=int, default=1, help="publishes each publisher keeps in flight"
    )
    parser.add_argument("--tier", default="unlimited", help="the server's tier")
    parser.add_argument(
        "--raw-rows", type=int, default=25, help="rows per transaction of the raw sqlite3 row"
    )
    parser.add_argument(
        "--stub-commit-ms",
        type=float,
        help="also run the server with each batch write replaced by a sleep this long",
    )
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(load_args(args.load)))))
        return
    rates: Dict[str, List[float]] = {"batched": [], "single": [], "live": [], "ceiling": []}
    p, m, t, w = args.publishers, args.messages, args.tier, args.window
    runs: List[Tuple[str, Callable[[], Dict[str, Any]]]] = [
        ("batched", lambda: _run(True, p, m, t, True, w)),
        ("single", lambda: _run(False, p, m, t, True, w)),
        ("live", lambda: _run(True, p, m, t, False, w)),
        ("ceiling", lambda: _ceiling(p, m, w)),
    ]
    stub = args.stub_commit_ms
    if stub is not None:
        runs.append(("stub", lambda: _run(True, p, m, t, True, w, stub_ms=stub)))
    rates["stub"] = []
    for r in range(args.rounds):
        # Rotate the order so drift on a shared machine hits every variant.
        k = r % len(runs)
        for name, run in runs[k:] + runs[:k]:
            result = run()
            rates[name].append(result["acked"] / result["seconds"])
    b, s, live, c = (statistics.median(rates[k]) for k in ("batched", "single", "live", "ceiling"))
    raw = _raw_commits(args.raw_rows)
    print(machine_line())
    print(
        f"publishers={args.publishers} messages each={args.messages} window={args.window} "
        f"total per run={args.publishers * args.messages} rounds={args.rounds} tier={args.tier}"
    )
    print(f"batched commits    : {b:10,.0f} msgs/s median  ({runs_text(rates['batched'])})")
    print(f"one commit per msg : {s:10,.0f} msgs/s median  ({runs_text(rates['single'])})")
    print(f"ratio of medians   : {b / s:.2f}x  (goal >= 5x)")
    print(f"persist: false     : {live:10,.0f} msgs/s median  ({runs_text(rates['live'])})")
    print(f"persisted / live   : {b / live:.2f}x  (goal >= 0.7x; same server, same load)")
    print(f"no database at all : {c:10,.0f} msgs/s median  ({runs_text(rates['ceiling'])})")
    print(f"batched / ceiling  : {b / c:.2f}x  (what the database and ordering cost)")
    print(
        f"raw sqlite3        : {raw['wall_ms']:.3f} ms a {args.raw_rows}-row commit (median), "
        f"{raw['cpu_us_per_row']:.1f} us CPU a row, {raw['rows_per_s']:,.0f} rows/s at that size"
    )
    if stub is not None:
        st = statistics.median(rates["stub"])
        print(
            f"stubbed {stub:g} ms write: {st:10,.0f} msgs/s median  ({runs_text(rates['stub'])})"
            f"  = {st / live:.2f}x of live"
        )


if __name__ == "__main__":
    main()
