"""Client RSS against a misbehaving server: a flood behind a blocked hook, and a long catch-up.

Servers run in child processes, so this process's RSS is the client's.

* **flood**: the hostile test server (``tests/hostile/_server.py``) sends
  FRAMES frames of SIZE MB (10**6 bytes) right after ``subscribed`` while the client's
  ``on_message`` hook is blocked. Reported: peak RSS growth (VmHWM).
* **catch-up**: the local server without ids on live frames (like the cloud)
  holds MESSAGES rows of about 2 KB; the client's cursor is set back to 0 and
  the socket cut, so the reconnect's catch-up walks all of them. Reported:
  RSS growth once the catch-up is done, and after a newer live message.

    python benchmarks/client_hostile_memory.py [FRAMES SIZE_MIB MESSAGES]
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

import requests
import websocket

import cohrt_sync

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLOOD_SERVER = (
    "import asyncio, sys\n"
    "from tests.hostile._server import HostileServer\n"
    "frames, size = int(sys.argv[1]), int(sys.argv[2])\n"
    "async def flood(ws, srv):\n"
    "    blob = 'x' * (size * 10**6)\n"
    "    for n in range(frames):\n"
    "        if ws.closed: return\n"
    "        try:\n"
    "            await ws.send_str('{\"action\":\"message\",\"event\":\"message\",'\n"
    "                              f'\"data\":{{\"n\":{n},\"b\":\"{blob}\"}}}}')\n"
    "        except ConnectionError: return\n"
    "srv = HostileServer().start()\n"
    "srv.on_subscribed = flood\n"
    "print(srv.base_url, srv.key, flush=True)\n"
    "sys.stdin.read()\n"
    "srv.close()\n"
)

LOCAL_SERVER = (
    "import sys\n"
    "from cohrt_sync.server import LocalServer\n"
    "srv = LocalServer(keys=['k_mem'], provision=True, live_ids=False).start()\n"
    "print(srv.base_url, 'k_mem', flush=True)\n"
    "sys.stdin.read()\n"
    "srv.close()\n"
)


def rss_kib(field: str = "VmRSS:") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return float(line.split()[1])
    raise SystemExit("needs /proc/self/status")


def settle() -> float:
    gc.collect()
    time.sleep(0.3)
    return rss_kib()


def start(code: str, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    base_url, key = proc.stdout.readline().split()
    return proc, base_url, key


def flood(frames: int, size: int) -> None:
    proc, base_url, key = start(FLOOD_SERVER, str(frames), str(size))
    release = threading.Event()

    class Blocked:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            release.wait(60)

    before = settle()
    with cohrt_sync.Client(key=key, base_url=base_url, plugins=[Blocked()]) as client:
        ch = client.subscribe("chat:flood", "reader")
        deadline = time.monotonic() + 60
        # Until the reader stops (overflow) or has read every frame.
        while ch.connected and time.monotonic() < deadline:
            if len(ch._inbox) >= frames:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        peak = rss_kib("VmHWM:")
        release.set()
    proc.communicate("", timeout=30)
    print(f"flood: {frames} frames x {size} MB behind a blocked hook: "
          f"peak RSS +{(peak - before) / 1024:,.0f} MiB")


def fill(base_url: str, key: str, channel: str, n: int) -> None:
    token = requests.post(f"{base_url}/edge/realtime/token", params={"key": key},
                          json={"user_id": "writer"}, timeout=10).json()["token"]
    url = base_url.replace("http", "ws", 1) + "/edge/realtime?" + urllib.parse.urlencode(
        {"token": token, "channel": channel})
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    ws.recv()
    ws.recv()
    text = "y" * 2000
    # In windows: a reader that fell far behind would be cut by the server.
    for start_at in range(0, n, 500):
        batch = range(start_at, min(n, start_at + 500))
        for i in batch:
            ws.send(json.dumps({"action": "publish", "event": "message",
                                "data": {"n": i, "text": text}}))
        for _ in range(2 * len(batch)):  # each publish: its ack and the message
            ws.recv()
    ws.close()


def catch_up(n: int) -> None:
    proc, base_url, key = start(LOCAL_SERVER)
    done = threading.Event()
    count = [0]

    class Counter:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            count[0] += 1

        @cohrt_sync.hookimpl
        def on_reconnected(self, caught_up: int) -> None:
            done.set()

    fill(base_url, key, "chat:catchup", n)
    with cohrt_sync.Client(key=key, base_url=base_url, plugins=[Counter()]) as client:
        ch = client.subscribe("chat:catchup", "reader")
        before = settle()
        ch._dispatcher._ledger.last_id = 0  # as if all of them went by during an outage
        ch._conn.force_reconnect()
        if not done.wait(300):
            raise SystemExit("catch-up did not finish")
        held = settle()
        client.publish("chat:catchup", {"newer": True})
        deadline = time.monotonic() + 30
        while count[0] < n + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = settle()
    proc.communicate("", timeout=30)
    print(f"catch-up: {count[0] - 1:,} messages of ~2 KB recovered: RSS "
          f"+{(held - before) / 1024:,.1f} MiB when done, "
          f"+{(after - before) / 1024:,.1f} MiB after a newer live message")


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    messages = int(sys.argv[3]) if len(sys.argv) > 3 else 90_000
    flood(frames, size)
    catch_up(messages)


if __name__ == "__main__":
    main()
