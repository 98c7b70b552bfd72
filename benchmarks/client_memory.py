"""Memory: RSS growth per open channel, just opened and idle.

The server runs in a subprocess so only the client's memory is measured.
Opens 100 channels after a warm-up, and reports the growth of this process's
RSS divided by 100 twice: just opened (half a second after the last, both
threads of each channel running), and idle, once every channel's dispatcher
thread has parked (``dispatch_idle``, 5 s by default, after its last item:
a socket and one reader thread each). Baseline in the same run: 100 raw
websocket-client sockets with one reader thread each, measured after the
client's channels are closed. Goal (issue 23): <= 32 KiB per idle channel.

``--growth 100,300,1000`` opens channels on one ``Client`` up to each count
in turn and records RSS and thread count at each, against raw sockets
opened the same way; each round runs in a fresh process (so memory freed by
an earlier round can't be reused), and rounds alternate which goes first.
Growth per channel between steps shows whether anything grows worse than
linearly.

    python benchmarks/client_memory.py [CHANNELS]
    python benchmarks/client_memory.py --growth 100,300,1000 [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs
import requests
import websocket
from _child_server import ChildServer, raise_nofile, rss_kib, thread_count
from _load import load_args, machine_line, run_load

import cohrt_sync

KEY = "k_bench"
_CLIENT_FIELDS = attrs.fields_dict(cohrt_sync.Client)
#: The client's default: how long a quiet channel keeps its dispatcher thread
#: (None on code from before issue 23, whose channels keep both threads).
DISPATCH_IDLE: Optional[float] = (
    _CLIENT_FIELDS["dispatch_idle"].default if "dispatch_idle" in _CLIENT_FIELDS else None
)


def settle() -> float:
    gc.collect()
    time.sleep(0.5)
    return rss_kib()


def _grow(
    open_one: Callable[[int], None], steps: List[int], idle_threads: int = 0
) -> List[Tuple[int, float, int]]:
    """RSS growth (KiB) and thread count at each step, from the same start.

    With ``idle_threads`` (threads each opened item keeps once idle), each
    step also waits until the process is down to that many threads per item
    and records a second row, negative count: ``(-target, growth, threads)``.
    """
    before, threads_before, done, out = settle(), thread_count(), 0, []
    for target in steps:
        while done < target:
            open_one(done)
            done += 1
        out.append((target, settle() - before, thread_count()))
        if idle_threads and DISPATCH_IDLE is not None:
            until = threads_before + idle_threads * target
            deadline = time.monotonic() + DISPATCH_IDLE + 10
            while thread_count() > until and time.monotonic() < deadline:
                time.sleep(0.1)
            out.append((-target, settle() - before, thread_count()))
    return out


def raw_sockets(base_url: str, steps: List[int]) -> List[Tuple[int, float, int]]:
    socks, threads = [], []
    stop = threading.Event()

    def read(ws: websocket.WebSocket) -> None:
        while not stop.is_set():
            try:
                ws.recv()
            except Exception:
                return

    def open_one(i: int) -> None:
        token = requests.post(f"{base_url}/edge/realtime/token", params={"key": KEY},
                              json={"user_id": f"r{i}"}, timeout=10).json()["token"]
        url = base_url.replace("http", "ws", 1) + "/edge/realtime?" + urllib.parse.urlencode(
            {"token": token, "channel": f"mem:raw{i}"})
        ws = websocket.create_connection(url, skip_utf8_validation=True)
        json.loads(ws.recv())
        t = threading.Thread(target=read, args=(ws,), daemon=True)
        t.start()
        socks.append(ws)
        threads.append(t)

    out = _grow(open_one, steps)
    stop.set()
    for ws in socks:
        ws.close(timeout=1)
    for t in threads:
        t.join(2)
    return out


def client_channels(base_url: str, steps: List[int]) -> List[Tuple[int, float, int]]:
    """Steps just opened (positive counts) and idle (negative), see :func:`_grow`."""
    with cohrt_sync.Client(key=KEY, base_url=base_url) as client:
        for i in range(5):  # warm up: imports, first bearer, first threads
            client.subscribe(f"mem:warm{i}", user_id="w").close()
        return _grow(
            lambda i: client.subscribe(f"mem:c{i}", user_id=f"u{i}"), steps, idle_threads=1
        )


def _one_round(args: Dict[str, Any]) -> Dict[str, Any]:
    raise_nofile()
    run = client_channels if args["kind"] == "client" else raw_sockets
    return {"steps": run(args["base_url"], args["steps"])}


def _rows(rnd: List[Tuple[int, float, int]], idle: bool) -> List[Tuple[int, float, int]]:
    """One round's just-opened rows, or its idle rows (the raw sockets have only the former)."""
    rows = [(abs(n), kib, th) for n, kib, th in rnd if (n < 0) == idle]
    return rows or [(n, kib, th) for n, kib, th in rnd if n > 0]


def _growth(base_url: str, steps: List[int], rounds: int) -> None:
    res: Dict[str, List[List[Tuple[int, float, int]]]] = {"client": [], "raw": []}
    for r in range(rounds):
        pair = ["client", "raw"]
        for kind in pair if r % 2 == 0 else pair[::-1]:
            got = run_load(__file__, {"kind": kind, "base_url": base_url, "steps": steps})
            res[kind].append([tuple(s) for s in got["steps"]])  # type: ignore[misc]
    print(machine_line())
    print(f"one Client, channels opened up to {steps}, {rounds} rounds, each in a fresh process;"
          f" idle: once the dispatchers parked (dispatch_idle {DISPATCH_IDLE} s)")
    head = "RSS growth  KiB/ch (step)  threads"
    print(f"channels  state       | cohrt_sync: {head} | raw socket + reader thread: {head}")
    for i, n in enumerate(steps):
        for idle in (False, True):
            cols = []
            for kind in ("client", "raw"):
                rows = [_rows(rnd, idle) for rnd in res[kind]]
                grow = [rnd[i][1] for rnd in rows]
                prev_n = steps[i - 1] if i else 0
                step = [(rnd[i][1] - (rnd[i - 1][1] if i else 0)) / (n - prev_n) for rnd in rows]
                threads = [rnd[i][2] for rnd in rows]
                cols.append(
                    f"{statistics.median(grow) / 1024:7.1f} MiB  {statistics.median(step):5.1f} "
                    f"({min(step):.1f}-{max(step):.1f})  {statistics.median(threads):6.0f}"
                )
            state = "idle" if idle else "just opened"
            print(f"{n:>8,}  {state:<11} | {cols[0]} | {cols[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("channels", nargs="?", type=int, default=100)
    parser.add_argument("--growth", help="channel counts, e.g. 100,300,1000")
    parser.add_argument("--rounds", type=int, default=3, help="with --growth")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(_one_round(load_args(args.load))))
        return
    with ChildServer("ours", keys=[KEY], provision=True) as srv:
        if args.growth:
            _growth(srv.base_url, [int(x) for x in args.growth.split(",")], args.rounds)
            return
        n = args.channels
        rows = client_channels(srv.base_url, [n])
        (_, opened, _), (_, idle, idle_threads) = rows[0], rows[-1]
        raw = raw_sockets(srv.base_url, [n])[0][1] / n
    print(f"memory, {n} open channels: cohrt_sync {idle / n:,.1f} KiB RSS per idle channel "
          f"(socket + reader thread each once the dispatcher parked, {idle_threads} threads; "
          f"goal <= 32 KiB), {opened / n:,.1f} KiB just opened (2 threads each); raw "
          f"websocket-client socket + 1 reader thread {raw:,.1f} KiB each")


if __name__ == "__main__":
    main()
