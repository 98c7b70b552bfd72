"""Publishing 1,000 messages from a script: the ways to do it, against the HTTP loop baseline.

The server runs in a child process (``cohrt-sync serve``), so it does not
share this interpreter's lock. Each round times, in rotated order:

* baseline: ``Client.publish`` in a loop (one HTTP round trip each);
* ``Channel.publish`` in a loop (one WebSocket round trip each);
* ``Channel.publish_many`` (every frame sent, then every ack awaited).

All messages are persisted. Medians of the rounds are reported, with every round.

    python benchmarks/client_publish_many.py [N] [ROUNDS]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

import cohrt_sync

KEY = "k_bench_many"


def start_server() -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cohrt_sync.cli", "serve", "--port", "0", "--key", KEY,
         "--provision"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit("the server did not start")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    proc, url = start_server()
    seconds: Dict[str, List[float]] = {"http loop": [], "publish loop": [], "publish_many": []}
    try:
        with cohrt_sync.Client(key=KEY, base_url=url) as client:
            ch = client.subscribe("bench:many", user_id="bench")
            client.publish("bench:warm", 0)  # the bearer mint is a one-off
            items = [{"text": "hello world, a typical chat message", "i": i} for i in range(n)]
            ways: Dict[str, Callable[[], object]] = {
                "http loop": lambda: [client.publish("bench:http", d) for d in items],
                "publish loop": lambda: [ch.publish(d) for d in items],
                "publish_many": lambda: ch.publish_many(items),
            }
            names = list(ways)
            for r in range(rounds):
                # Rotated order: the server slows as its table grows.
                for i in range(len(names)):
                    name = names[(r + i) % len(names)]
                    start = time.perf_counter()
                    ways[name]()
                    seconds[name].append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(10)
    base = statistics.median(seconds["http loop"])
    print(f"{n} persisted messages, {rounds} rounds, median seconds (every round):")
    for name, runs in seconds.items():
        med = statistics.median(runs)
        every = ", ".join(f"{s:.3f}" for s in runs)
        print(f"  {name:13} {med:6.3f} s  {n / med:8,.0f} msgs/s  {base / med:5.2f}x  ({every})")


if __name__ == "__main__":
    main()
