"""``client.close()`` against a server that stops answering: how long it takes, what it leaves.

A hung host or a network black hole is when an application most needs to
exit. SIGSTOP reproduces it: the server's kernel still accepts connections
and data, nothing answers. The server (``LocalServer`` in a child process)
is stopped with SIGSTOP, and ``close()`` of a client with ``--channels``
channels is timed in each state the channels can be in:

* ``live``: every channel connected, the server answering (the baseline);
* ``connected``: every channel connected, the server frozen;
* ``reconnecting``: every channel dropped after the freeze, so each
  reconnect's token request hangs;
* ``storm``: a drop storm (every channel's socket cut again and again),
  frozen in the middle of it, so channels are caught anywhere between
  connected, backing off, minting a token and upgrading a socket.

For each it prints close()'s median seconds, the ratio to the ``live`` close
of the same run, and the library threads still alive when close() returned
(the server is let go with SIGCONT only after that count).

    python benchmarks/client_close_frozen.py [--channels 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import threading
import time
from typing import Callable, Dict, List, Tuple

from _child_server import ChildServer
from _load import machine_line

import cohrt_sync
from cohrt_sync import _cancel
from cohrt_sync.retry import Retry

KEY = "k_bench_close_frozen"
FAST_RECONNECT = Retry(total=None, backoff_factor=0.05, backoff_max=0.3, jitter=0.5)


def library_threads() -> List[threading.Thread]:
    """Threads the client library started (the server runs in another process)."""
    return [t for t in threading.enumerate() if t.name.startswith("cohrt-sync-")]


def wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def in_http_request(ch: cohrt_sync.Channel) -> bool:
    """True while the channel's reader waits on an HTTP answer (a reconnect's token)."""
    reader = ch._conn.thread
    return reader is not None and reader.ident in _cancel._IN_USE


def freeze_connected(pid: int, chans: List[cohrt_sync.Channel]) -> None:
    os.kill(pid, signal.SIGSTOP)


def freeze_reconnecting(pid: int, chans: List[cohrt_sync.Channel]) -> None:
    os.kill(pid, signal.SIGSTOP)
    for ch in chans:
        ch._conn.force_reconnect()
    if not wait_until(lambda: all(in_http_request(ch) for ch in chans), 10):
        print("  (not every reader reached its token request)")


def freeze_in_storm(pid: int, chans: List[cohrt_sync.Channel]) -> None:
    stop = threading.Event()

    def storm() -> None:
        while not stop.wait(0.02):
            for ch in chans:
                ch._conn.force_reconnect()

    stormer = threading.Thread(target=storm, name="bench-storm", daemon=True)
    stormer.start()
    time.sleep(0.7)
    os.kill(pid, signal.SIGSTOP)
    time.sleep(0.3)
    stop.set()
    stormer.join()


def freeze_nothing(pid: int, chans: List[cohrt_sync.Channel]) -> None:
    pass


SCENARIOS: Dict[str, Callable[[int, List[cohrt_sync.Channel]], None]] = {
    "live": freeze_nothing,
    "connected": freeze_connected,
    "reconnecting": freeze_reconnecting,
    "storm": freeze_in_storm,
}


def one_close(scenario: str, channels: int) -> Tuple[float, int, int]:
    """(close() seconds, readers alive, library threads alive) for one scenario."""
    with ChildServer("ours", keys=[KEY], provision=True) as srv:
        try:
            client = cohrt_sync.Client(
                key=KEY, base_url=srv.base_url, reconnect_backoff=FAST_RECONNECT
            )
            chans = [client.subscribe(f"room:close{i}", user_id=f"u{i}") for i in range(channels)]
            SCENARIOS[scenario](srv.pid, chans)
            start = time.monotonic()
            client.close()
            seconds = time.monotonic() - start
            left = library_threads()
            readers = sum(1 for t in left if t.name.startswith("cohrt-sync-reader-"))
        finally:
            os.kill(srv.pid, signal.SIGCONT)
        # Whatever the old code left behind ends once the server answers again.
        wait_until(lambda: not library_threads(), 30)
    return seconds, readers, len(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.channels} channels, {args.rounds} rounds; close(timeout=5)")
    results: Dict[str, List[Tuple[float, int, int]]] = {name: [] for name in SCENARIOS}
    for _ in range(args.rounds):
        for name in SCENARIOS:
            results[name].append(one_close(name, args.channels))
    base = statistics.median(r[0] for r in results["live"])
    print(f"{'server':<14}{'close() s':>11}{'vs live':>9}  readers left  threads left  rounds (s)")
    for name, rounds in results.items():
        median = statistics.median(r[0] for r in rounds)
        readers = max(r[1] for r in rounds)
        threads = max(r[2] for r in rounds)
        each = ", ".join(f"{r[0]:.2f}" for r in rounds)
        ratio = median / base
        print(f"{name:<14}{median:>11.2f}{ratio:>8.1f}x  {readers:>12}  {threads:>12}  {each}")


if __name__ == "__main__":
    main()
