"""The receive benchmark's peer row: python-socketio's sync ``Client`` on the same burst.

A python-socketio ``AsyncServer`` (aiohttp) runs in a process of its own and,
on each connection, emits N ``message`` events carrying the spec's payload as
fast as it can. Two readers take the burst, alternating, each in a fresh
process, timed from their first event to their N-th:

* python-socketio's sync ``Client`` (websocket transport), counting in its
  ``message`` handler;
* a raw websocket-client loop on the same server's socket (``recv()`` +
  ``json.loads`` of each event), which is that server's ceiling as a source.

python-socketio's server is slower than its client, so the client is also
fed from ``_stream_source.py``'s ``/socket.io/`` endpoint (pre-serialized
events, at socket speed): its own ceiling, beside ours from the same source.

Needs ``pip install -e '.[bench]'`` (python-socketio is a benchmark-only
dependency). Run by ``client_receive.py --peer``, or alone:

    python benchmarks/_socketio_peer.py [N] [ROUNDS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = {"text": "hello world, a typical chat message"}


def serve() -> None:
    """The python-socketio server: a burst of N events to every client that connects."""
    import asyncio

    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    async def burst(sid: str, n: int) -> None:
        for i in range(n):
            await sio.emit("message", {**DATA, "i": i}, to=sid)

    @sio.event
    async def connect(sid: str, environ: dict, auth: dict) -> None:  # type: ignore[type-arg]
        n = int((auth or {}).get("n", 0)) or int(environ.get("QUERY_STRING", "").split(
            "n=")[-1].split("&")[0] or 0)
        sio.start_background_task(burst, sid, n)

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    done = asyncio.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)),
                     daemon=True).start()
    loop.run_until_complete(done.wait())
    loop.run_until_complete(runner.cleanup())


def client_rate(port: int, n: int) -> float:
    """python-socketio's sync Client: events reaching its handler, per second."""
    import socketio

    sio = socketio.Client()
    done = threading.Event()
    count = [0]
    first = [0.0]

    @sio.on("message")
    def on_message(data: dict) -> None:  # type: ignore[type-arg]
        count[0] += 1
        if count[0] == 1:
            first[0] = time.perf_counter()
        elif count[0] == n:
            done.set()

    sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"], auth={"n": n})
    if not done.wait(300):
        raise SystemExit(f"only {count[0]} of {n} events arrived")
    elapsed = time.perf_counter() - first[0]
    sio.disconnect()
    return (n - 1) / elapsed


def raw_rate(port: int, n: int) -> float:
    """A raw websocket-client loop on the same server: engine.io's frames, decoded."""
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&n={n}",
        skip_utf8_validation=True,
    )
    ws.recv()  # engine.io open
    ws.send("40")  # socket.io connect to "/"; the burst starts
    got, start = 0, 0.0
    while got < n:
        packet = ws.recv()
        if packet == "2":
            ws.send("3")  # engine.io ping -> pong
        elif packet.startswith("42"):
            json.loads(packet[2:])
            got += 1
            if got == 1:
                start = time.perf_counter()
    elapsed = time.perf_counter() - start
    ws.close()
    return (n - 1) / elapsed


def measure(what: str, port: int, n: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--one", what, str(port), str(n)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


SOCKETIO = "python-socketio sync Client"
FAST = "python-socketio sync Client, fast source"


def main(n: int, rounds: int, fast_port: int = 0) -> Dict[str, List[float]]:
    """Alternate the readers over ``rounds``; print and return every figure.

    :param fast_port: ``_stream_source.py``'s port, to also feed the client at socket speed.
    """
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    results: Dict[str, List[float]] = {SOCKETIO: [], "raw loop on its socket (its ceiling)": []}
    if fast_port:
        results[FAST] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        measure("raw", port, 200)
        for r in range(rounds):
            order = [("raw loop on its socket (its ceiling)", "raw", port),
                     (SOCKETIO, "client", port)]
            if fast_port:
                order.append((FAST, "client", fast_port))
            for label, what, on in order if r % 2 else order[::-1]:
                results[label].append(measure(what, on, n))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)
    print(f"peer: python-socketio server -> {n:,} events x {rounds} rounds")
    for label, values in results.items():
        print(f"  {label:<42} median {statistics.median(values):>9,.0f} msg/s  "
              f"(spread {min(values):,.0f}-{max(values):,.0f})")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve()
    elif sys.argv[1:2] == ["--one"]:
        fn = client_rate if sys.argv[2] == "client" else raw_rate
        print(fn(int(sys.argv[3]), int(sys.argv[4])))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000,
             int(sys.argv[2]) if len(sys.argv) > 2 else 3)
