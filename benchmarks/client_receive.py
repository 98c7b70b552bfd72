"""Receive throughput: msgs/s reaching an on_message hook vs a raw websocket-client loop.

The server runs in its own process, and so does the publisher that floods the
channel, so this process holds only the reader under test. Both readers take
the same stream from the same server in the same run, timed from their first
message to their N-th. The baseline is the fastest raw loop: ``recv()`` +
``json.loads`` with ``skip_utf8_validation=True``. Goal: client >= 0.85x.

    python benchmarks/client_receive.py [N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import List

import requests
import websocket

import cohrt_sync

KEY = "k_bench"
SERVER = (
    "import sys\n"
    "from cohrt_sync.server import LocalServer\n"
    f"srv = LocalServer(keys=[{KEY!r}], provision=True).start()\n"
    "print(srv.base_url, flush=True)\n"
    "sys.stdin.read()\n"
    "srv.close()\n"
)


def _ws(base_url: str, channel: str, user: str) -> websocket.WebSocket:
    token = requests.post(
        f"{base_url}/edge/realtime/token", params={"key": KEY}, json={"user_id": user}, timeout=10
    ).json()["token"]
    url = base_url.replace("http", "ws", 1) + "/edge/realtime?" + urllib.parse.urlencode(
        {"token": token, "channel": channel}
    )
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    ws.recv()
    ws.recv()  # connected, subscribed
    return ws


def flood(base_url: str, channel: str, n: int) -> None:
    """Pipeline n publishes on a raw socket; a thread drains its own copies.

    Persisted (the API's default) unless the channel name says ``eph``.
    """
    ws = _ws(base_url, channel, "publisher")
    frame = json.dumps({"action": "publish", "event": "message", "persist": "eph" not in channel,
                        "data": {"text": "hello world, a typical chat message"}})

    def drain() -> None:
        seen = 0
        while seen < 2 * n:  # every publish returns an ack and the message itself
            ws.recv()
            seen += 1

    reader = threading.Thread(target=drain)
    reader.start()
    for _ in range(n):
        ws.send(frame)
    reader.join()
    ws.close()


def start_flood(base_url: str, channel: str, n: int) -> subprocess.Popen[bytes]:
    """The publisher, in a process of its own."""
    return subprocess.Popen([sys.executable, __file__, "--flood", base_url, channel, str(n)])


def raw_baseline(base_url: str, channel: str, n: int) -> float:
    ws = _ws(base_url, channel, "raw")
    pub = start_flood(base_url, channel, n)
    got, start = 0, 0.0
    while got < n:
        frame = json.loads(ws.recv())
        if frame.get("action") == "message":
            got += 1
            if got == 1:
                start = time.perf_counter()
    elapsed = time.perf_counter() - start
    pub.wait(60)
    ws.close()
    return (n - 1) / elapsed


def client_rate(base_url: str, channel: str, n: int) -> float:
    done = threading.Event()
    count = [0]
    first = [0.0]

    class Counter:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            count[0] += 1
            if count[0] == 1:
                first[0] = time.perf_counter()
            elif count[0] == n:
                done.set()

    # A queue that holds the whole burst: this measures throughput; what
    # happens to a consumer that falls 10,000 frames behind is a policy
    # (docs/client.md), tested, not benchmarked.
    with cohrt_sync.Client(key=KEY, base_url=base_url, plugins=[Counter()],
                           queue_size=n + 100) as client:
        client.subscribe(channel, user_id="reader")
        pub = start_flood(base_url, channel, n)
        if not done.wait(120):
            raise SystemExit(f"only {count[0]} of {n} messages arrived")
        elapsed = time.perf_counter() - first[0]
        pub.wait(60)
    return (n - 1) / elapsed


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--flood":
        flood(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = 3
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        raw_baseline(base_url, "bench:warm", 500)
        # Persisted frames (the API's default) carry ids on this server; the
        # non-persisted ones don't, which is the client's id-less path.
        for mode, tag in (("persisted", "p"), ("non-persisted", "eph")):
            raws: List[float] = []
            ours: List[float] = []
            for r in range(rounds):
                runs = [(raws, raw_baseline, f"bench:raw-{tag}{r}"),
                        (ours, client_rate, f"bench:client-{tag}{r}")]
                # Alternate which goes first, and use a fresh channel each time.
                for results, measure, channel in runs if r % 2 == 0 else runs[::-1]:
                    results.append(measure(base_url, channel, n))
            med_raw, med_ours = statistics.median(raws), statistics.median(ours)
            print(f"receive, {mode}, {n} msgs x {rounds} rounds (median): raw websocket-client "
                  f"recv()+json.loads {med_raw:,.0f} msg/s; cohrt_sync on_message "
                  f"{med_ours:,.0f} msg/s; ratio {med_ours / med_raw:.2f}x (goal >= 0.85x)")
            print("  all rounds raw:", ", ".join(f"{r:,.0f}" for r in raws),
                  "| client:", ", ".join(f"{r:,.0f}" for r in ours))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)


if __name__ == "__main__":
    main()
