"""History at scale: a page of 100 with 1M rows in realtime_messages against 10k rows.

Two servers run side by side, each in its own process: one whose tenant
table holds 10,000 rows, one with 1,000,000. Both tables are filled before
their server starts, by a direct ``sqlite3`` insert into the tenant's file
(the server is started once to create the tenant and its schema, then
stopped). In both, the channel read holds 1,000 messages interleaved with
the other channels' rows, so the only difference is the table's size.

A round reads 100 pages of 100 at random cursors from each server, three
ways: ``GET /edge/realtime/history`` with a bare ``requests.Session``,
``Client.history``, and the same ``SELECT`` run by ``sqlite3`` on the file
itself (the database's own share). Rounds alternate which server goes
first; the script prints medians per round, their median and spread, and
the ratio 1M / 10k (goal: <= 1.5x).

Then ``Client.iter_history`` reads a 100,000-message channel of the 1M
table from end to end, against a bare ``requests`` loop paging the same
channel and parsing the JSON, in alternating rounds (msgs/s).

    python benchmarks/server_history.py [--rows 10000,1000000] [--rounds 5] [--iter-rounds 3]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import requests
from _child_server import ChildServer
from _load import machine_line, runs_text

import cohrt_sync

KEY = "k_bench"
TARGET = "hist:target"  # 1,000 messages in every table
TARGET_ROWS = 1000
BIG = "hist:big"  # the iter_history channel, in tables of 1M rows and more
BIG_ROWS = 100_000
PAGE = 100


def _rows(total: int) -> Iterator[Tuple[str, str, str, int]]:
    every = total // TARGET_ROWS
    big_every = total // BIG_ROWS if total >= 10 * BIG_ROWS else 0
    now = int(time.time() * 1000)
    pad = "x" * 64
    for i in range(1, total + 1):
        if i % every == 0:
            channel = TARGET
        elif big_every and i % big_every == 1:
            channel = BIG
        else:
            channel = f"hist:other{i % 1000}"
        yield channel, "message", '{"i":%d,"pad":"%s"}' % (i, pad), now


def prepare(data_dir: Path, total: int) -> Path:
    """A data dir whose tenant's realtime_messages holds ``total`` rows; its db file."""
    with ChildServer("ours", keys=[KEY], provision=True, data_dir=str(data_dir)) as srv:
        with cohrt_sync.Client(key=KEY, base_url=srv.base_url) as client:
            client.publish("hist:seed", {"seed": True})  # creates the tenant's table
    (db_file,) = (data_dir / "tenants").glob("*.sqlite3")
    db = sqlite3.connect(db_file)
    db.execute("DELETE FROM realtime_messages")
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'realtime_messages'")
    db.executemany(
        "INSERT INTO realtime_messages (channel, event, data, created_at_ms) VALUES (?, ?, ?, ?)",
        _rows(total),
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return db_file


def _timed(calls: List[Callable[[], object]]) -> float:
    """Median latency of ``calls`` in µs; each must return a full page."""
    times = []
    for call in calls:
        started = time.perf_counter()
        got = call()
        times.append((time.perf_counter() - started) * 1e6)
        if len(got) != PAGE:  # type: ignore[arg-type]
            raise SystemExit(f"short page: {len(got)} messages")  # type: ignore[arg-type]
    return statistics.median(times)


class Target:
    """One running server with its table, and the three ways to read a page."""

    def __init__(self, srv: ChildServer, db_file: Path) -> None:
        self.srv = srv
        self.client = cohrt_sync.Client(key=KEY, base_url=srv.base_url)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {KEY}"
        self.db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        self.ids = [
            r[0]
            for r in self.db.execute(
                "SELECT id FROM realtime_messages WHERE channel = ? ORDER BY id", (TARGET,)
            )
        ]

    def round(self, picks: List[int]) -> Dict[str, float]:
        cursors = [self.ids[k] for k in picks]
        url = self.srv.base_url + "/edge/realtime/history"

        def raw(after: int) -> List[object]:
            r = self.session.get(url, params={"channel": TARGET, "after": after, "limit": PAGE})
            r.raise_for_status()
            return list(r.json()["messages"])

        def sql(after: int) -> List[object]:
            return self.db.execute(
                "SELECT id, channel, event, data, created_at_ms FROM realtime_messages"
                " WHERE channel = ? AND id > ? ORDER BY id LIMIT ?",
                (TARGET, after, PAGE),
            ).fetchall()

        return {
            "http": _timed([lambda a=a: raw(a) for a in cursors]),
            "client": _timed([lambda a=a: self.client.history(TARGET, a, PAGE) for a in cursors]),
            "sqlite3": _timed([lambda a=a: sql(a) for a in cursors]),
        }

    def close(self) -> None:
        self.client.close()
        self.session.close()
        self.db.close()


def _iter_client(t: Target) -> float:
    started = time.perf_counter()
    n = sum(1 for _ in t.client.iter_history(BIG, page_size=PAGE))
    if n != BIG_ROWS:
        raise SystemExit(f"iter_history read {n} of {BIG_ROWS} messages")
    return n / (time.perf_counter() - started)


def _iter_raw(t: Target) -> float:
    url = t.srv.base_url + "/edge/realtime/history"
    started = time.perf_counter()
    n, after = 0, 0
    while True:
        r = t.session.get(url, params={"channel": BIG, "after": after, "limit": PAGE})
        r.raise_for_status()
        page = r.json()["messages"]
        if not page:
            break
        n += len(page)
        after = page[-1]["id"]
    if n != BIG_ROWS:
        raise SystemExit(f"the raw loop read {n} of {BIG_ROWS} messages")
    return n / (time.perf_counter() - started)


def _spread(values: List[float]) -> str:
    return f"{statistics.median(values):8,.0f} µs  ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="10000,1000000", help="SMALL,LARGE table sizes")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 100 pages each way")
    parser.add_argument("--iter-rounds", type=int, default=3, help="iter_history rounds")
    args = parser.parse_args()
    small_n, large_n = (int(x) for x in args.rows.split(","))
    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as tmp:
        fill: Dict[int, float] = {}
        files = {}
        for total in (small_n, large_n):
            started = time.perf_counter()
            files[total] = prepare(Path(tmp) / str(total), total)
            fill[total] = time.perf_counter() - started
        with (
            ChildServer("ours", keys=[KEY], provision=True, data_dir=f"{tmp}/{small_n}") as s_srv,
            ChildServer("ours", keys=[KEY], provision=True, data_dir=f"{tmp}/{large_n}") as l_srv,
        ):
            small, large = Target(s_srv, files[small_n]), Target(l_srv, files[large_n])
            res: Dict[Tuple[int, str], List[float]] = {}
            for r in range(args.rounds):
                picks = [rng.randrange(TARGET_ROWS - PAGE) for _ in range(PAGE)]
                order = [(small_n, small), (large_n, large)]
                for total, t in order if r % 2 == 0 else order[::-1]:
                    for way, us in t.round(picks).items():
                        res.setdefault((total, way), []).append(us)
            iters: Dict[str, List[float]] = {"client": [], "raw": []}
            if large_n >= 10 * BIG_ROWS:
                for r in range(args.iter_rounds):
                    pair = [("client", _iter_client), ("raw", _iter_raw)]
                    for name, run in pair if r % 2 == 0 else pair[::-1]:
                        iters[name].append(run(large))
            small.close()
            large.close()
    print(machine_line())
    print(
        f"tables of {small_n:,} and {large_n:,} rows (filled by direct sqlite3 insert in "
        f"{fill[small_n]:.1f} s and {fill[large_n]:.1f} s); channel {TARGET!r} holds "
        f"{TARGET_ROWS:,} in each; {args.rounds} rounds of {PAGE} pages of {PAGE}"
    )
    print("page of 100, median latency per round: median of rounds (min-max)")
    for way, label in (
        ("http", "GET /history (requests)"),
        ("client", "Client.history        "),
        ("sqlite3", "the SELECT in sqlite3 "),
    ):
        s, big = res[(small_n, way)], res[(large_n, way)]
        print(
            f"  {label}: {small_n:>9,} rows {_spread(s)}   {large_n:>9,} rows {_spread(big)}"
            f"   ratio {statistics.median(big) / statistics.median(s):.2f}x"
            + ("  (goal <= 1.5x)" if way != "sqlite3" else "")
        )
    if iters["client"]:
        c, raw = statistics.median(iters["client"]), statistics.median(iters["raw"])
        print(f"iter_history over {BIG_ROWS:,} messages of a {large_n:,}-row table:")
        print(f"  Client.iter_history : {c:9,.0f} msgs/s median  ({runs_text(iters['client'])})")
        print(f"  bare requests loop  : {raw:9,.0f} msgs/s median  ({runs_text(iters['raw'])})")
        print(f"  ratio of medians    : {c / raw:.2f}x")


if __name__ == "__main__":
    main()
