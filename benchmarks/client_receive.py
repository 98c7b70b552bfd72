"""Receive throughput: msgs/s reaching an on_message hook vs a raw websocket-client loop.

The load source (``_stream_source.py``) runs in its own process and streams
pre-serialized spec-shaped frames as fast as the socket allows, so the reader
is what is measured, not the source. Each measurement runs in a fresh child
process, timed from its first message to its N-th; the variants alternate
within each round, and the source's own ceiling (a socket that only counts
bytes) is measured in every round beside them.

* ``raw``: the fastest raw loop, websocket-client ``recv()`` + ``json.loads``
  with ``skip_utf8_validation=True``. The baseline. Goals: the client
  delivers >= 0.85x of it on id-less frames, >= 0.9x on frames with ids.
* ``client``: cohrt_sync, counting in an ``on_message`` hook.
* ``--wsaccel``: also the raw loop and the client with websocket-client's
  UTF-8 validation on, with and without ``wsaccel`` (the ``[speedups]`` extra).
* the peer row (``--peer``, needs ``pip install -e '.[bench]'``): python-socketio's
  sync ``Client`` receiving the same number of events from a python-socketio
  server (``_socketio_peer.py``), beside a raw loop on that server's socket.

    python benchmarks/client_receive.py [--n 20000] [--rounds 5] [--wsaccel] [--peer]
"""

from __future__ import annotations

import os
import sys

if os.environ.get("BENCH_NO_WSACCEL"):
    # Before websocket-client is imported: it looks for wsaccel once, at import.
    sys.modules["wsaccel"] = None  # type: ignore[assignment]

import argparse
import json
import statistics
import subprocess
import threading
import time
from typing import Callable, Dict, List, Tuple

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HERE = os.path.dirname(os.path.abspath(__file__))


def _url(port: int, channel: str) -> str:
    return f"ws://127.0.0.1:{port}/edge/realtime?token=bench-token&channel={channel}"


def _open(port: int, channel: str, utf8: bool = False) -> websocket.WebSocket:
    ws = websocket.create_connection(_url(port, channel), skip_utf8_validation=not utf8)
    ws.recv()
    ws.recv()  # connected, subscribed
    return ws


def ceiling(port: int, channel: str, n: int) -> float:
    """The source's own rate: a socket that only counts the burst's bytes."""
    # Imported here, like _load in main(): the readers' processes should not
    # carry aiohttp's objects, which a full garbage collection there would walk.
    from _stream_source import burst

    kind = channel.split(":")[1]
    total = sum(len(c) for c in burst(channel, kind, n))
    ws = _open(port, channel)
    sock = ws.sock
    got = len(b"".join(ws.frame_buffer.recv_buffer))
    start = 0.0
    while got < total:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("the source closed early")
        if not start:
            start = time.perf_counter()
        got += len(chunk)
    elapsed = time.perf_counter() - start
    ws.close()
    return n / elapsed


def raw(port: int, channel: str, n: int, utf8: bool = False) -> float:
    """The baseline: websocket-client recv() + json.loads, nothing else."""
    ws = _open(port, channel, utf8)
    recv, loads = ws.recv, json.loads
    loads(recv())
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n - 1):
        loads(recv())
    elapsed = time.perf_counter() - start
    CPU[0] = (time.process_time() - cpu) / (n - 1)
    ws.close()
    return (n - 1) / elapsed


def client(port: int, channel: str, n: int, utf8: bool = False) -> float:
    """cohrt_sync: messages reaching an on_message hook."""
    import cohrt_sync
    from cohrt_sync import handshake

    if utf8:
        # The same client with websocket-client's own UTF-8 check turned on.
        plain = websocket.WebSocket
        handshake.websocket.WebSocket = (  # type: ignore[misc]
            lambda **kw: plain(**{**kw, "skip_utf8_validation": False}))
    done = threading.Event()
    count = [0]
    first = [0.0, 0.0]

    class Counter:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            count[0] += 1
            if count[0] == 1:
                first[:] = time.perf_counter(), time.process_time()
            elif count[0] == n:
                CPU[0] = (time.process_time() - first[1]) / (n - 1)
                done.set()

    # A queue that holds the whole burst: this measures throughput; what
    # happens to a consumer that falls queue_size frames behind is a policy
    # (docs/client.md), tested, not benchmarked.
    with cohrt_sync.Client(key="k_bench", base_url=f"http://127.0.0.1:{port}",
                           plugins=[Counter()], queue_size=n + 100) as c:
        c.subscribe(channel, user_id="reader")
        if not done.wait(120):
            raise SystemExit(f"only {count[0]} of {n} messages arrived")
        elapsed = time.perf_counter() - first[0]
    return (n - 1) / elapsed


#: CPU microseconds a message of every measurement, by label.
CPU_US: Dict[str, List[float]] = {}
#: CPU seconds a message (every thread of the process), set by raw() and client().
CPU = [0.0]

MEASURES: Dict[str, Callable[..., float]] = {"ceiling": ceiling, "raw": raw, "client": client}


def measure(what: str, port: int, channel: str, n: int, *, utf8: bool = False,
            wsaccel: bool = True) -> Tuple[float, float]:
    """Run one measurement in a fresh child process; its msgs/s and CPU us a message."""
    env = dict(os.environ)
    env.pop("BENCH_NO_WSACCEL", None)
    if not wsaccel:
        env["BENCH_NO_WSACCEL"] = "1"
    args = [sys.executable, __file__, "--one", what, str(port), channel, str(n)]
    if utf8:
        args.append("--utf8")
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    rate, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(rate), float(cpu) * 1e6


def has_wsaccel() -> bool:
    try:
        import wsaccel  # noqa: F401
    except ImportError:
        return False
    return True


def run_rows(port: int, n: int, rounds: int,
             variants: List[Tuple[str, str, str, Dict[str, bool]]]) -> Dict[str, List[float]]:
    """Alternate ``variants`` (label, what, kind, options) over ``rounds``; every figure."""
    results: Dict[str, List[float]] = {label: [] for label, _, _, _ in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for label, what, kind, opts in order:
            channel = f"bench:{kind}:{n}:{what}{r}"
            rate, cpu = measure(what, port, channel, n, **opts)
            results[label].append(rate)
            if cpu:
                CPU_US.setdefault(label, []).append(cpu)
    return results


def report(results: Dict[str, List[float]], base: str) -> None:
    from _load import runs_text

    med = {label: statistics.median(v) for label, v in results.items()}
    for label, values in results.items():
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        ratio = "" if label == base else f"  {med[label] / med[base]:.2f}x {base}"
        print(f"  {label:<34} median {med[label]:>9,.0f} msg/s  (spread {spread}){ratio}")
        cpu = CPU_US.pop(label, None)
        cpu_text = f"; CPU a message: median {statistics.median(cpu):.1f} us" if cpu else ""
        print(f"  {'':<34} rounds: {runs_text(values)}{cpu_text}")


def main() -> None:
    if len(sys.argv) >= 6 and sys.argv[1] == "--one":
        what, port, channel, n = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        extra = {"utf8": True} if "--utf8" in sys.argv[6:] else {}
        rate = MEASURES[what](port, channel, n, **extra)
        print(rate, CPU[0])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--wsaccel", action="store_true", help="also UTF-8 validation, +/- wsaccel")
    p.add_argument("--peer", action="store_true", help="also python-socketio's sync Client")
    args = p.parse_args()
    from _load import machine_line

    print(machine_line())
    source = subprocess.Popen([sys.executable, os.path.join(HERE, "_stream_source.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert source.stdout is not None
        port = int(source.stdout.readline())
        measure("raw", port, "bench:idless:500:warm", 500)
        ours: Dict[str, float] = {}
        for kind, goal in (("idless", 0.85), ("ids", 0.9)):
            variants = [("source ceiling (bytes only)", "ceiling", kind, {}),
                        ("raw recv()+json.loads", "raw", kind, {}),
                        ("cohrt_sync on_message", "client", kind, {})]
            if args.wsaccel and kind == "idless":
                variants += [
                    ("raw, utf8 check, wsaccel", "raw", kind, {"utf8": True}),
                    ("raw, utf8 check, no wsaccel", "raw", kind,
                     {"utf8": True, "wsaccel": False}),
                    ("cohrt_sync, no wsaccel", "client", kind, {"wsaccel": False}),
                    ("cohrt_sync, utf8 check, wsaccel", "client", kind, {"utf8": True}),
                ]
            results = run_rows(port, args.n, args.rounds, variants)
            print(f"receive, {kind} frames, {args.n:,} msgs x {args.rounds} rounds "
                  f"(goal: client >= {goal}x raw; wsaccel installed: {has_wsaccel()})")
            report(results, "raw recv()+json.loads")
            ours[kind] = statistics.median(results["cohrt_sync on_message"])
        if args.peer:
            import _socketio_peer

            peer = _socketio_peer.main(args.n, args.rounds, port)
            for label in (_socketio_peer.SOCKETIO, _socketio_peer.FAST):
                theirs = statistics.median(peer[label])
                print(f"  cohrt_sync (id-less) / {label}: {ours['idless'] / theirs:.1f}x "
                      "(goal >= 3x)")
    finally:
        if source.stdin is not None:
            source.stdin.close()
        source.wait(30)


if __name__ == "__main__":
    main()
