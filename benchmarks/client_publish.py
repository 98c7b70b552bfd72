"""HTTP publish throughput: cohrt_sync Client.publish vs a bare requests.Session loop.

Same in-process local server, same run. The baseline posts to
``/edge/realtime?key=`` with a keep-alive ``requests.Session``; the client
uses its edge bearer, argument checks and error mapping.
Goal: client >= 0.9x baseline.

    python benchmarks/client_publish.py [N]
"""

from __future__ import annotations

import sys
import time

import requests

import cohrt_sync
from cohrt_sync.server import LocalServer

KEY = "k_bench"
DATA = {"text": "hello world, a typical chat message"}


def bare(base_url: str, n: int, bearer: bool = False) -> float:
    with requests.Session() as session:
        url = f"{base_url}/edge/realtime"
        params, headers = {"key": KEY}, {}
        if bearer:
            token = session.post(f"{base_url}/edge/session", params=params, timeout=10).json()
            params, headers = {}, {"Authorization": f"Bearer {token['token']}"}
        start = time.perf_counter()
        for _ in range(n):
            resp = session.post(url, params=params, headers=headers, timeout=10,
                                json={"channel": "bench:bare", "event": "message", "data": DATA})
            resp.raise_for_status()
            resp.json()
        return n / (time.perf_counter() - start)


def client(base_url: str, n: int) -> float:
    with cohrt_sync.Client(key=KEY, base_url=base_url) as c:
        c.publish("bench:client", DATA)  # the bearer mint is a one-off
        start = time.perf_counter()
        for _ in range(n):
            c.publish("bench:client", DATA)
        return n / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = 3
    bares, bearers, ours = [], [], []
    with LocalServer(keys=[KEY], provision=True) as srv:
        bare(srv.base_url, 200)
        runs = [
            lambda: bares.append(bare(srv.base_url, n)),
            lambda: ours.append(client(srv.base_url, n)),
            lambda: bearers.append(bare(srv.base_url, n, bearer=True)),
        ]
        for r in range(rounds):
            # Rotate the order: the server slows as its table grows, which
            # would otherwise favour whichever loop always runs first.
            for i in range(len(runs)):
                runs[(r + i) % len(runs)]()
    b, o, bb = max(bares), max(ours), max(bearers)
    print(f"publish, {n} HTTP publishes x {rounds} rounds (best): bare requests.Session ?key= "
          f"{b:,.0f}/s; cohrt_sync Client.publish {o:,.0f}/s; ratio {o / b:.2f}x (goal >= 0.9x)")
    print(f"  (bare requests.Session with the edge bearer instead of ?key=: {bb:,.0f}/s; "
          f"client vs that {o / bb:.2f}x)")
    print("  all rounds bare:", ", ".join(f"{r:,.0f}" for r in bares),
          "| client:", ", ".join(f"{r:,.0f}" for r in ours))


if __name__ == "__main__":
    main()
