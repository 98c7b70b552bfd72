"""Latency: publish -> on_message hook (p50/p99) vs a raw websocket echo round trip.

The client publishes on its own channel socket and times until its hook sees
the message (ack and broadcast both travel back over the socket): the clock
is read in the hook, the first line of code that has the message, as the
raw loop's clock is read once its recv() has it. The baseline is the same
exchange on a raw websocket-client socket: send the publish frame, recv()
until the broadcast comes back. Same server, same run.

A second figure times the same round trips until the publishing thread,
waiting on a threading.Event the hook sets, wakes up: what a script that
publishes and then waits for its own message sees. It adds one more thread
hand-off (the hook's thread to the publisher), which no code receiving the
message pays; until issue 23 it was the script's only figure.

Goal (issue 23): p50 and p99, timed in the hook, <= 1.5x the raw echo's.

    python benchmarks/client_latency.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import urllib.parse
from typing import Tuple

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


class HookClock:
    """A plugin that reads the clock in ``on_message`` and wakes the publisher."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.at = 0.0

    @cohrt_sync.hookimpl
    def on_message(self, message: cohrt_sync.Message) -> None:
        self.at = time.perf_counter()
        self.arrived.set()


def round_trips(ch: cohrt_sync.Channel, clock: HookClock, n: int) -> Tuple[list, list]:
    """Publish ``n`` times on ``ch``, each after the last reached the hook.

    :returns: seconds from each publish to the hook, and to the publisher
        woken by the hook.
    """
    to_hook, to_publisher = [], []
    for i in range(n):
        clock.arrived.clear()
        start = time.perf_counter()
        ch.publish({"i": i}, persist=False)
        if not clock.arrived.wait(10):
            raise SystemExit("message never reached the hook")
        to_publisher.append(time.perf_counter() - start)
        to_hook.append(clock.at - start)
    return to_hook, to_publisher


def client_latency(base_url: str, n: int) -> Tuple[list, list]:
    """Seconds from publish to the hook, and to the publisher woken by the hook."""
    clock = HookClock()
    with cohrt_sync.Client(key=KEY, base_url=base_url, plugins=[clock]) as client:
        return round_trips(client.subscribe("bench:client-lat", user_id="lat"), clock, n)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with LocalServer(keys=[KEY], provision=True) as srv:
        raw_rtt(srv.base_url, 200)
        raw = raw_rtt(srv.base_url, n)
        ours, woken = client_latency(srv.base_url, n)
        raw += raw_rtt(srv.base_url, n)
    r50, r99 = pct(raw, 0.5), pct(raw, 0.99)
    o50, o99 = pct(ours, 0.5), pct(ours, 0.99)
    w50, w99 = pct(woken, 0.5), pct(woken, 0.99)
    print(f"latency, {n} round trips: raw websocket echo p50 {r50:,.0f} us p99 {r99:,.0f} us; "
          f"cohrt_sync publish->on_message p50 {o50:,.0f} us ({o50 / r50:.2f}x) p99 "
          f"{o99:,.0f} us ({o99 / r99:.2f}x) (goal <= 1.5x both), mean "
          f"{statistics.mean(ours) * 1e6:,.0f} us; publisher woken by the hook p50 "
          f"{w50:,.0f} us ({w50 / r50:.2f}x) p99 {w99:,.0f} us ({w99 / r99:.2f}x)")


if __name__ == "__main__":
    main()
