"""Scrollback: the newest 50 messages of a 10,000-message channel, by SQL and by the history walk.

History pages only forward from an id, so before ``Client.newest`` the
newest 50 took a walk of the whole channel: 100 pages of 100 (what the
Flask routes' browser client did, one route call per page). ``newest``
asks direct SQL once (``ORDER BY id DESC LIMIT 50``) and checks the
answer; the walk stays as its fallback where SQL is refused.

The server runs in a child process on a data dir filled beforehand by a
direct ``sqlite3`` insert: the target channel's 10,000 messages interleaved
with 10,000 of other channels (ids count across the tenant). Rounds
alternate which way goes first; the script prints the requests each way
makes, the median time per call, and the ratio walk / newest measured in
the same run. With Flask installed it also measures the same two ways
through the Flask routes, as a browser sees them: the old scrollback loop
of ``history?after=&limit=100`` route calls, against one
``history?newest=50``.

    python benchmarks/client_newest.py [--messages 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import collections
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import requests
from _child_server import ChildServer
from _load import machine_line

import cohrt_sync
from cohrt_sync._http import make_session

KEY = "k_bench_newest"
TARGET = "room:scrollback"
N = 50


class CountingSession(requests.Session):
    """A real session counting the requests it sends, edge session mints aside."""

    def __init__(self) -> None:
        super().__init__()
        for prefix, adapter in make_session().adapters.items():
            self.mount(prefix, adapter)
        self.sent = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if not url.endswith("/edge/session"):
            self.sent += 1
        return super().request(method, url, *args, **kwargs)


def _rows(messages: int) -> Iterator[Tuple[str, str, str, int]]:
    now = int(time.time() * 1000)
    for i in range(messages):
        yield TARGET, "message", '{"i":%d,"text":"message %d"}' % (i, i), now
        yield f"room:other{i % 50}", "message", '{"other":%d}' % i, now


def prepare(data_dir: Path, messages: int) -> None:
    """A data dir whose tenant holds the target channel's ``messages`` and as many others."""
    with ChildServer("ours", keys=[KEY], provision=True, data_dir=str(data_dir)) as srv:
        with cohrt_sync.Client(key=KEY, base_url=srv.base_url) as client:
            client.publish("room:seed", {"seed": True})  # creates the tenant's table
    (db_file,) = (data_dir / "tenants").glob("*.sqlite3")
    db = sqlite3.connect(db_file)
    db.execute("DELETE FROM realtime_messages")
    db.executemany(
        "INSERT INTO realtime_messages (channel, event, data, created_at_ms) VALUES (?, ?, ?, ?)",
        _rows(messages),
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def walk(client: cohrt_sync.Client) -> List[cohrt_sync.Message]:
    """The way before ``newest``: every page, keeping the last 50."""
    return list(collections.deque(client.iter_history(TARGET, page_size=100), maxlen=N))


def newest(client: cohrt_sync.Client) -> List[cohrt_sync.Message]:
    """``Client.newest``: one direct-SQL request."""
    return client.newest(TARGET, N)


def _route_ways(base_url: str) -> Any:
    """The two ways through the Flask routes, or None without Flask."""
    try:
        from flask import Flask

        from cohrt_sync.flask import Cohrt
    except ImportError:
        return None
    app = Flask(__name__)
    app.config.update(COHRT_KEY=KEY, COHRT_BASE_URL=base_url)
    cohrt = Cohrt(app, user_loader=lambda: ("bench", None), authorize=lambda u, c, a: True)
    web = app.test_client()
    calls = [0]

    def get(query: str) -> List[Any]:
        calls[0] += 1
        r = web.get(f"/realtime/history?channel={TARGET}&{query}")
        assert r.status_code == 200, r.json
        return list(r.json["items"])

    def route_walk() -> List[Any]:
        # What examples/flask_chat's scrollback did before history?newest.
        after, kept = 0, collections.deque(maxlen=N)
        while True:
            page = get(f"after={after}&limit=100")
            kept.extend(page)
            if len(page) < 100:
                return list(kept)
            after = page[-1]["id"]

    def route_newest() -> List[Any]:
        return get(f"newest={N}")

    return cohrt, app, calls, {"route walk": route_walk, "route newest": route_newest}


def _timed(way: Callable[[cohrt_sync.Client], List[Any]], client: Any, session: Any) -> Tuple[
    float, int, List[Any]
]:
    before = session.sent
    started = time.perf_counter()
    got = way(client)
    return time.perf_counter() - started, session.sent - before, got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the channel")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, each way once per round")
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        prepare(Path(tmp), args.messages)
        print(f"filled {args.messages:,} + {args.messages:,} rows in "
              f"{time.perf_counter() - started:.1f} s")
        with ChildServer("ours", keys=[KEY], provision=True, data_dir=tmp) as srv:
            session = CountingSession()
            with cohrt_sync.Client(key=KEY, base_url=srv.base_url, session=session) as client:
                client.history(TARGET, limit=1)  # warm: the edge session and the connection
                ways = {"walk": walk, "newest": newest}
                times: Dict[str, List[float]] = {w: [] for w in ways}
                sent: Dict[str, int] = {}
                answers: Dict[str, List[Any]] = {}
                for r in range(args.rounds):
                    order = list(ways.items())
                    for name, way in order if r % 2 == 0 else order[::-1]:
                        seconds, count, got = _timed(way, client, session)
                        times[name].append(seconds)
                        sent[name] = count
                        answers[name] = got
            routes = _route_ways(srv.base_url)
            if routes is not None:
                cohrt, app, calls, route_ways = routes
                for name in route_ways:
                    times[name] = []
                for r in range(args.rounds):
                    order = list(route_ways.items())
                    for name, run in order if r % 2 == 0 else order[::-1]:
                        before = calls[0]
                        started = time.perf_counter()
                        answers[name] = run()
                        times[name].append(time.perf_counter() - started)
                        sent[name] = calls[0] - before
                cohrt.close(app)
    if answers["walk"] != answers["newest"]:
        raise SystemExit("newest and the walk disagree")
    expected = [{"i": i, "text": f"message {i}"} for i in range(args.messages - N, args.messages)]
    if [m.data for m in answers["newest"]] != expected:
        raise SystemExit("newest is not the channel's last 50")
    print(f"the newest {N} of a {args.messages:,}-message channel, {args.rounds} rounds:")
    for name in times:
        ms = [t * 1000 for t in times[name]]
        what = "route calls" if name.startswith("route") else "requests"
        print(f"  {name:13} {sent[name]:4} {what:11}  median {statistics.median(ms):8.1f} ms"
              f"  runs {', '.join(f'{v:.1f}' for v in ms)}")
    for walked, fast in (("walk", "newest"), ("route walk", "route newest")):
        if walked in times:
            ratio = statistics.median(times[walked]) / statistics.median(times[fast])
            print(f"  {walked} / {fast}: {ratio:.0f}x the time, {sent[walked]}x the calls")
    if "route newest" in answers:
        ids = [m.id for m in answers["newest"]]
        if [i["id"] for i in answers["route newest"]] != ids or [
            i["id"] for i in answers["route walk"]
        ] != ids:
            raise SystemExit("the routes disagree with the client")


if __name__ == "__main__":
    main()
