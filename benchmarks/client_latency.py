"""Latency: publish -> on_message hook (p50/p99) vs a raw websocket echo round trip.

The client publishes on its own channel socket and times until its hook sees
the message (ack and broadcast both travel back over the socket). The baseline
is the same exchange on a raw websocket-client socket: send the publish frame,
recv() until the broadcast comes back. Same server, same run.
Goal: client p50 <= 2x baseline p50.

    python benchmarks/client_latency.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import urllib.parse

import requests
import websocket

import cohrt_sync
from cohrt_sync.server import LocalServer

KEY = "k_bench"


def pct(samples: list, p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1e6


def raw_rtt(base_url: str, n: int) -> list:
    token = requests.post(f"{base_url}/edge/realtime/token", params={"key": KEY},
                          json={"user_id": "raw"}, timeout=10).json()["token"]
    url = base_url.replace("http", "ws", 1) + "/edge/realtime?" + urllib.parse.urlencode(
        {"token": token, "channel": "bench:raw-lat"})
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    ws.recv()
    ws.recv()
    samples = []
    for i in range(n):
        frame = json.dumps({"action": "publish", "event": "message", "persist": False,
                            "data": {"i": i}})
        start = time.perf_counter()
        ws.send(frame)
        while True:
            got = json.loads(ws.recv())
            if got.get("action") == "message" and got["data"]["i"] == i:
                break
        samples.append(time.perf_counter() - start)
    ws.close()
    return samples


def client_latency(base_url: str, n: int) -> list:
    arrived = threading.Event()

    class Hook:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            arrived.set()

    samples = []
    with cohrt_sync.Client(key=KEY, base_url=base_url, plugins=[Hook()]) as client:
        ch = client.subscribe("bench:client-lat", user_id="lat")
        for i in range(n):
            arrived.clear()
            start = time.perf_counter()
            ch.publish({"i": i}, persist=False)
            if not arrived.wait(10):
                raise SystemExit("message never reached the hook")
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with LocalServer(keys=[KEY], provision=True) as srv:
        raw_rtt(srv.base_url, 200)
        raw = raw_rtt(srv.base_url, n)
        ours = client_latency(srv.base_url, n)
        raw += raw_rtt(srv.base_url, n)
    r50, o50 = pct(raw, 0.5), pct(ours, 0.5)
    print(f"latency, {n} round trips: raw websocket echo p50 {r50:,.0f} us p99 "
          f"{pct(raw, 0.99):,.0f} us; cohrt_sync publish->hook p50 {o50:,.0f} us p99 "
          f"{pct(ours, 0.99):,.0f} us; p50 ratio {o50 / r50:.2f}x (goal <= 2x); "
          f"mean {statistics.mean(ours) * 1e6:,.0f} us")


if __name__ == "__main__":
    main()
