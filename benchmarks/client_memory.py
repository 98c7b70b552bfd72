"""Memory: RSS growth per open channel (two threads and a socket each).

The server runs in a subprocess so only the client's memory is measured.
Opens 100 channels after a warm-up, and reports the growth of this process's
RSS divided by 100. Baseline in the same run: 100 raw websocket-client
sockets with one reader thread each. Goal: <= 64 KiB per channel.

    python benchmarks/client_memory.py [CHANNELS]
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import threading
import time
import urllib.parse

import requests
import websocket

import cohrt_sync

KEY = "k_bench"
SERVER = (
    "import sys, time\n"
    "from cohrt_sync.server import LocalServer\n"
    "srv = LocalServer(keys=['k_bench'], provision=True).start()\n"
    "print(srv.base_url, flush=True)\n"
    "sys.stdin.read()\n"
    "srv.close()\n"
)


def rss_kib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
    except OSError:
        pass
    # Peak, not current, RSS: still an upper bound for the growth.
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def settle() -> float:
    gc.collect()
    time.sleep(0.5)
    return rss_kib()


def raw_sockets(base_url: str, n: int) -> float:
    socks, threads = [], []
    stop = threading.Event()

    def read(ws: websocket.WebSocket) -> None:
        while not stop.is_set():
            try:
                ws.recv()
            except Exception:
                return

    before = settle()
    for i in range(n):
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
    after = settle()
    stop.set()
    for ws in socks:
        ws.close(timeout=1)
    for t in threads:
        t.join(2)
    return (after - before) / n


def client_channels(base_url: str, n: int) -> float:
    with cohrt_sync.Client(key=KEY, base_url=base_url) as client:
        for i in range(5):  # warm up: imports, first bearer, first threads
            client.subscribe(f"mem:warm{i}", user_id="w").close()
        before = settle()
        for i in range(n):
            client.subscribe(f"mem:c{i}", user_id=f"u{i}")
        after = settle()
    return (after - before) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        ours = client_channels(base_url, n)
        raw = raw_sockets(base_url, n)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    print(f"memory, {n} open channels: cohrt_sync {ours:,.1f} KiB RSS per channel "
          f"(2 threads + socket each, goal <= 64 KiB); raw websocket-client socket + 1 "
          f"reader thread {raw:,.1f} KiB each")


if __name__ == "__main__":
    main()
