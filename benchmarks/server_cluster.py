"""Cluster mode (docs/cluster.md): what Redis costs, what a second node buys,
and how long a failover takes. Needs Debian's redis-server and the [cluster] extra.

Three measurements, each a ratio against a baseline measured in the same run:

1. ``--part one-node``: a cluster of one node against a standalone server,
   same load, in alternating rounds: fan-out (server_fanout.py's load: one
   publisher, 100 sockets, ``persist: false``; goal ≥ 0.7x) and persisted
   publish (server_persist.py's load: 50 publishers waiting for each ack;
   goal ≥ 0.7x). The servers run in this process, as in those scripts.
2. ``--part two-nodes``: deliveries/s of 2 nodes against 1, each node its own
   process; two publishers (one per node, each on its own channel) and their
   subscriber sockets split across the nodes. The machine has 2 cores that
   the load processes and redis-server share, so the CPU the node processes
   (and redis-server) spent per delivery is reported beside the rate.
3. ``--part failover``: ``kill -9`` of the owner node while a prober
   publishes through the other node every 10 ms; the time from the kill to
   the first acknowledged publish, median and worst of ``--failovers`` runs.

    python benchmarks/server_cluster.py [--part one-node|two-nodes|failover|all]
        [--rounds 3] [--subscribers 100] [--messages 2000] [--failovers 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import requests
import server_fanout
import server_persist
from _child_server import ChildServer, raise_nofile
from _load import machine_line, mint, run_load, runs_text

from cohrt_sync.server import LocalServer

KEY = "k_bench"


class Redis:
    """A throwaway redis-server on a free loopback port."""

    def __enter__(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(8).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __exit__(self, *exc: Any) -> None:
        self.proc.kill()
        self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used."""
    return server_fanout._cpu_seconds(pid)


# -- 1. one node against standalone --------------------------------------------------
def _fanout(clustered: bool, subscribers: int, messages: int) -> float:
    with Redis() as redis, LocalServer(
        keys=[KEY], provision=True, cluster=redis.url if clustered else None
    ) as srv:
        base = srv.ws_url + "/edge/realtime?channel=bench&token="
        subs = [base + mint(srv.base_url, KEY, f"u{i}") for i in range(subscribers)]
        got = run_load(
            server_fanout.__file__,
            {
                "messages": messages,
                "sub_urls": subs,
                "pub_url": base + mint(srv.base_url, KEY, "publisher"),
                "greeting": 2,
                "server_pid": os.getpid(),
            },
        )
    return float(got["deliveries"] / got["seconds"])


def _persist(clustered: bool, publishers: int, messages: int) -> float:
    with Redis() as redis, tempfile.TemporaryDirectory() as tmp, LocalServer(
        keys=[KEY], provision=True, data_dir=tmp, cluster=redis.url if clustered else None
    ) as srv:
        urls = [
            f"{srv.ws_url}/edge/realtime?channel=persist-{i}"
            f"&token={mint(srv.base_url, KEY, f'p{i}')}"
            for i in range(publishers)
        ]
        got = run_load(server_persist.__file__, {"urls": urls, "messages": messages})
    return float(got["acked"] / got["seconds"])


def one_node(rounds: int, subscribers: int, messages: int) -> None:
    # Each run has a redis-server of its own, the standalone runs too (unused),
    # so both pay for the same processes on the machine.
    cases: List[Tuple[str, Callable[[bool], float]]] = [
        ("fan-out deliveries/s", lambda c: _fanout(c, subscribers, messages)),
        ("persisted publishes/s", lambda c: _persist(c, 50, 100)),
    ]
    print(f"1. a cluster of one node against a standalone server, {rounds} rounds")
    for name, run in cases:
        alone: List[float] = []
        node: List[float] = []
        for r in range(rounds):
            pair = [(alone, False), (node, True)]
            for results, clustered in pair if r % 2 == 0 else pair[::-1]:
                results.append(run(clustered))
        ratio = statistics.median(node) / statistics.median(alone)
        print(f"   {name}")
        print(f"     standalone   : {statistics.median(alone):10,.0f}  ({runs_text(alone)})")
        print(f"     cluster of 1 : {statistics.median(node):10,.0f}  ({runs_text(node)})")
        print(f"     ratio        : {ratio:.2f}x  (goal >= 0.7x)")


# -- 2. two nodes against one ----------------------------------------------------------
def _spread(nodes: int, subscribers: int, messages: int) -> Dict[str, float]:
    with Redis() as redis, tempfile.TemporaryDirectory() as tmp:
        children = [
            ChildServer("ours", keys=[KEY], provision=True, data_dir=tmp, cluster=redis.url)
            for _ in range(nodes)
        ]
        for child in children:
            child.__enter__()
        try:
            loads = []
            for p in range(2):  # two publishers, one per node when there are two
                pub_node = children[p % nodes]
                channel = f"bench{p}"
                subs = []
                for i in range(subscribers):
                    node = children[i % nodes]
                    token = mint(node.base_url, KEY, f"u{p}-{i}")
                    subs.append(f"{node.ws_url}/edge/realtime?channel={channel}&token={token}")
                token = mint(pub_node.base_url, KEY, f"pub{p}")
                pub = f"{pub_node.ws_url}/edge/realtime?channel={channel}&token={token}"
                loads.append(
                    {"messages": messages, "sub_urls": subs, "pub_url": pub, "greeting": 2}
                )
            pids = [c.pid for c in children]
            cpu = [cpu_seconds(pid) for pid in pids]
            redis_cpu = cpu_seconds(redis.proc.pid)
            results: List[Dict[str, Any]] = [{}, {}]

            def run(i: int) -> None:
                results[i] = run_load(server_fanout.__file__, loads[i])

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            node_cpu = sum(cpu_seconds(pid) for pid in pids) - sum(cpu)
            redis_cpu = cpu_seconds(redis.proc.pid) - redis_cpu
        finally:
            for child in children:
                child.__exit__()
    deliveries = sum(r["deliveries"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {
        "rate": deliveries / seconds,
        "node_us": node_cpu * 1e6 / deliveries,
        "redis_us": redis_cpu * 1e6 / deliveries,
        "wall": wall,
    }


def two_nodes(rounds: int, subscribers: int, messages: int) -> None:
    got: Dict[int, List[Dict[str, float]]] = {1: [], 2: []}
    for r in range(rounds):
        for n in (1, 2) if r % 2 == 0 else (2, 1):
            got[n].append(_spread(n, subscribers, messages))
    print(
        f"2. deliveries/s, 2 nodes against 1: two publishers on two channels, "
        f"{subscribers} sockets each, {messages} messages each, {rounds} rounds"
    )
    for n in (1, 2):
        rates = [g["rate"] for g in got[n]]
        node_us = statistics.median(g["node_us"] for g in got[n])
        redis_us = statistics.median(g["redis_us"] for g in got[n])
        print(
            f"   {n} node{'s' if n > 1 else ' '}: {statistics.median(rates):10,.0f} deliveries/s"
            f"  ({runs_text(rates)});  CPU per delivery: nodes {node_us:.1f} µs,"
            f" redis-server {redis_us:.2f} µs"
        )
    ratio = statistics.median(g["rate"] for g in got[2]) / statistics.median(
        g["rate"] for g in got[1]
    )
    print(f"   ratio 2/1   : {ratio:.2f}x")


# -- 3. failover -------------------------------------------------------------------------
def _owner_port(client: Any, tenant: str) -> int:
    value = client.get(f"cohrt:lease:{tenant}")
    node = value.decode().rpartition("|")[0] if value else ""
    url = client.hget(f"cohrt:node:{node}", "url") if node else None
    return int(url.decode().rsplit(":", 1)[1]) if url else 0


def _failover_once(redis: Redis) -> float:
    import hashlib

    import redis as redis_py

    tenant = "t_" + hashlib.sha256(KEY.encode()).hexdigest()[:20]
    client = redis_py.Redis.from_url(redis.url)
    with tempfile.TemporaryDirectory() as tmp:
        code = "import sys; from cohrt_sync.cli import main; sys.exit(main())"
        procs = []
        urls = []
        for _ in range(2):
            proc = subprocess.Popen(
                [sys.executable, "-c", code, "serve", "--port", "0", "--data-dir", tmp,
                 "--cluster", redis.url, "--key", KEY, "--provision"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            line = proc.stdout.readline()
            urls.append(line.split("listening on ")[1].split()[0])
            procs.append(proc)
        try:
            owner = _owner_port(client, tenant)
            victim = 0 if urls[0].endswith(f":{owner}") else 1
            survivor = urls[1 - victim]
            session = requests.Session()

            def publish() -> bool:
                try:
                    r = session.post(
                        survivor + "/edge/realtime",
                        params={"key": KEY},
                        json={"channel": "probe", "data": 1},
                        timeout=10,
                    )
                    return r.status_code == 200
                except requests.RequestException:
                    return False

            assert publish(), "the cluster did not serve before the kill"
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            killed = time.monotonic()
            while not publish():
                time.sleep(0.01)
                if time.monotonic() - killed > 60:
                    raise SystemExit("no failover within 60 s")
            return time.monotonic() - killed
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    proc.wait(30)
            client.close()


def failover(runs: int) -> None:
    times = []
    for _ in range(runs):
        with Redis() as redis:
            times.append(_failover_once(redis))
    print(f"3. failover after kill -9 of the owner node, {runs} runs (lease: 3 s)")
    print(
        f"   kill → first acknowledged publish: median {statistics.median(times):.2f} s,"
        f" worst {max(times):.2f} s  ({', '.join(f'{t:.2f}' for t in times)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parts = ["one-node", "two-nodes", "failover", "all"]
    parser.add_argument("--part", default="all", choices=parts)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()
    raise_nofile()
    print(machine_line())
    if args.part in ("one-node", "all"):
        one_node(args.rounds, args.subscribers, args.messages)
    if args.part in ("two-nodes", "all"):
        two_nodes(args.rounds, args.subscribers, args.messages)
    if args.part in ("failover", "all"):
        failover(args.failovers)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
