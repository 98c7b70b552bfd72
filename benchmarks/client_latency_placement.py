"""Diagnostic: publish -> on_message with the four busy threads pinned to chosen CPUs (Linux).

`client_latency.py`'s figure moves from run to run with where the kernel
puts the threads that carry a round trip: the in-process server's event
loop (S), the channel's reader (R) and dispatcher (D), and the publishing
thread (P). This script pins each of them (``os.sched_setaffinity`` on its
thread id, once the channel is open), times 3,000 round trips to the hook
as `client_latency.py` does, and prints the raw websocket echo of the same
process, unpinned, beside it. A placement is written ``S=0,R=1,D=1,P=1``.

Not a goal and not a setting: a library must not pin its threads (it
would fight the application's own placement). It shows why a run's ratio
depends on where its threads ran (docs/benchmarks.md, issue 23).

    python benchmarks/client_latency_placement.py [PLACEMENT ...]
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Dict

import client_latency

import cohrt_sync
from cohrt_sync.server import LocalServer

#: Reader and dispatcher together, then apart, with the server and publisher moved around.
PLACEMENTS = [
    "S=0,R=1,D=1,P=1",
    "S=0,R=1,D=1,P=0",
    "S=0,R=0,D=0,P=0",
    "S=1,R=0,D=0,P=0",
    "S=0,R=0,D=0,P=1",
    "S=0,R=1,D=0,P=1",
    "S=0,R=0,D=1,P=1",
    "S=0,R=1,D=0,P=0",
    "S=0,R=0,D=1,P=0",
    "S=1,R=0,D=1,P=0",
]


def run(placement: str, n: int = 3000) -> str:
    """One placement's line: the raw echo (unpinned) and ours (pinned), p50 and p99."""
    where: Dict[str, int] = {k: int(v) for k, v in (p.split("=") for p in placement.split(","))}
    clock = client_latency.HookClock()
    with LocalServer(keys=[client_latency.KEY], provision=True) as srv:
        server = next(t for t in threading.enumerate() if t.name == "cohrt-sync-server")
        raw = client_latency.raw_rtt(srv.base_url, 2000)
        with cohrt_sync.Client(key=client_latency.KEY, base_url=srv.base_url,
                               plugins=[clock]) as client:
            ch = client.subscribe("bench:placement", user_id="lat")
            client_latency.round_trips(ch, clock, 1)  # both threads started
            reader, dispatcher = ch._conn.thread, ch._dispatcher.thread  # a diagnostic's peek
            assert reader is not None and dispatcher is not None
            threads = {"S": server.native_id, "R": reader.native_id,
                       "D": dispatcher.native_id, "P": threading.get_native_id()}
            for name, tid in threads.items():
                os.sched_setaffinity(tid, {where[name]})
            try:
                ours, _ = client_latency.round_trips(ch, clock, n)
            finally:
                every = set(range(os.cpu_count() or 1))
                for tid in threads.values():
                    os.sched_setaffinity(tid, every)
        raw += client_latency.raw_rtt(srv.base_url, 2000)
    r50 = client_latency.pct(raw, 0.5)
    o50, o99 = client_latency.pct(ours, 0.5), client_latency.pct(ours, 0.99)
    together = "together" if where["R"] == where["D"] else "apart"
    return (f"{placement}  reader and dispatcher {together:8}  raw p50 {r50:4.0f} us  "
            f"ours p50 {o50:4.0f} us ({o50 / r50:.2f}x) p99 {o99:4.0f} us")


def main() -> None:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        raise SystemExit("needs Linux and at least 2 CPUs")
    for placement in sys.argv[1:] or PLACEMENTS:
        print(run(placement), flush=True)


if __name__ == "__main__":
    main()
