"""What a cluster survives, with real node processes and a real redis-server:
``kill -9`` of the owner under load, Redis stopping, and a partitioned owner."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Dict, List, Tuple

import requests
from server._balancer import Balancer
from server._wire import Api, Sock, assert_envelope, uniq

import cohrt_sync

from ._nodes import Node, owner_port, wait_for
from .conftest import KEY, TENANT

#: The issue's bounds: presence expires, and a new owner takes over, within this.
FAILOVER_BOUND_S = 10.0


class Publishers:
    """Threads publishing persisted messages over HTTP with Idempotency-Keys,
    each retried (same key) until acknowledged, so each is stored once."""

    def __init__(self, base_url: str, channel: str, count: int = 3) -> None:
        self.url = base_url + "/edge/realtime"
        self.channel = channel
        #: (publisher, seq) → acknowledged id
        self.acked: Dict[Tuple[int, int], int] = {}
        self.refusals: List[int] = []
        #: Publishes never acknowledged within their 30 s (each fails the test).
        self.failures: List[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"test-publisher-{n}")
            for n in range(count)
        ]
        for t in self._threads:
            t.start()

    def _run(self, n: int) -> None:
        session = requests.Session()
        seq = 0
        while not self._stop.is_set() and seq < 2000:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    r = session.post(
                        self.url,
                        params={"key": KEY},
                        json={"channel": self.channel, "data": {"n": n, "seq": seq}},
                        headers={"Idempotency-Key": f"p{n}-{seq}"},
                        timeout=5,
                    )
                except requests.RequestException:
                    session = requests.Session()  # a new connection: the other node
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    with self._lock:
                        self.acked[(n, seq)] = int(r.json()["id"])
                    break
                self.refusals.append(r.status_code)
                time.sleep(0.05)
            else:
                self.failures.append(f"publisher {n}: seq {seq} never acknowledged")
                return
            seq += 1
            time.sleep(0.01)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(40)


class Collect:
    """A plugin keeping every message id a client's channel delivers."""

    def __init__(self) -> None:
        self.ids: List[int] = []

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        self.ids.append(message.id)


def _history(api: Api, channel: str) -> List[dict]:
    out: List[dict] = []
    after = 0
    while True:
        page = api.history_ok(channel, after=after, limit=100)
        if not page:
            return out
        out.extend(page)
        after = page[-1]["id"]


def test_kill9_of_the_owner_under_publish_load(nodes: List[Node], rclient: Any) -> None:
    a, b = nodes
    wait_for(lambda: owner_port(rclient, TENANT) == a.port, 10, "the first node owns the tenant")
    balancer = Balancer([("127.0.0.1", a.port), ("127.0.0.1", b.port)])
    api_b = Api(b.base_url, KEY)
    ch = uniq()
    watcher = Sock(b.base_url, api_b.token("watcher"), ch)
    victim = Sock(a.base_url, api_b.token("victim", name="Victim"), ch)
    watcher.until(lambda f: f.get("action") == "join" and f["user"]["id"] == "victim")
    collectors = [Collect(), Collect()]
    clients = [
        cohrt_sync.Client(key=KEY, base_url=balancer.base_url, plugins=[c]) for c in collectors
    ]
    try:
        for i, client in enumerate(clients):
            client.subscribe(ch, user_id=f"reader{i}")
        assert min(balancer.served) > 0  # the readers' sockets are on both nodes
        load = Publishers(balancer.base_url, ch)
        wait_for(lambda: load.count() >= 40, 20, "acks before the kill")
        killed = time.monotonic()
        a.kill9()
        wait_for(lambda: owner_port(rclient, TENANT) == b.port, FAILOVER_BOUND_S, "a new owner")
        took_over = time.monotonic() - killed
        leave = watcher.until(
            lambda f: f.get("action") == "leave" and f["user"]["id"] == "victim",
            timeout=FAILOVER_BOUND_S - (time.monotonic() - killed),
        )
        assert leave["user"] == {"id": "victim", "name": "Victim"} and leave["last_seen"]
        before = load.count()
        wait_for(lambda: load.count() >= before + 40, 20, "acks after the failover")
        load.stop()
        assert not load.failures
        assert took_over < FAILOVER_BOUND_S

        rows = _history(api_b, ch)
        ids = [m["id"] for m in rows]
        assert ids == sorted(set(ids)), "ids are unique and increasing"
        stored = collections.Counter((m["data"]["n"], m["data"]["seq"]) for m in rows)
        assert set(stored.values()) == {1}, "nothing stored twice"
        by_key = {(m["data"]["n"], m["data"]["seq"]): m["id"] for m in rows}
        for key, id_ in load.acked.items():
            assert by_key.get(key) == id_, f"acknowledged {key} as {id_}, stored {by_key.get(key)}"

        want = sorted(load.acked.values())
        for i, c in enumerate(collectors):
            wait_for(
                lambda c=c: set(want) <= set(c.ids),
                30,
                lambda c=c, i=i: f"every ack reached reader {i} (missing"
                f" {sorted(set(want) - set(c.ids))[:20]}, acked {len(want)}, got {len(c.ids)},"
                f" newest {max(c.ids, default=0)})",
            )
            assert c.ids == sorted(set(c.ids)), "each reader got each message once, in order"
    finally:
        for client in clients:
            client.close()
        watcher.close()
        victim.close()
        balancer.close()


def test_redis_stopping_refuses_writes_keeps_sockets_and_comes_back(
    nodes: List[Node], redis_server: Any
) -> None:
    a, b = nodes
    api_a, api_b = Api(a.base_url, KEY), Api(b.base_url, KEY)
    ch = uniq()
    on_a = Sock(a.base_url, api_a.token("on-a"), ch)
    on_b = Sock(b.base_url, api_b.token("on-b"), ch)
    acked = [on_b.publish({"n": 0}, persist=True)["id"]]
    assert on_a.message()["id"] == acked[0]

    redis_server.stop()

    def refused(api: Api) -> Any:
        r = api.publish(ch, {"n": "while down"})
        if r.status_code == 200:  # before the node noticed: stored, so counted
            acked.append(r.json()["id"])
            return None
        return [r]  # a Response is falsy for a 503

    for api in (api_a, api_b):
        [r] = wait_for(lambda api=api: refused(api), 5, "a write refused while Redis is down")
        err = assert_envelope(r, 503, "UNAVAILABLE")
        assert "Redis" in err["message"] and r.headers["Retry-After"]
    on_b.send({"action": "publish", "data": {"n": "ws while down"}})
    frame = on_b.until(lambda f: "error" in f or f.get("action") == "published")
    assert "error" in frame and "Redis" in frame["error"], frame

    redis_server.start()  # the same port, empty

    def back() -> bool:
        r = api_a.publish(ch, {"n": "after"})
        if r.status_code == 200:
            acked.append(r.json()["id"])
        return r.status_code == 200

    wait_for(back, 15, "writes accepted again once Redis is back")
    # The sockets opened before the outage are the ones still working.
    def ws_back() -> Any:
        on_b.send({"action": "publish", "data": {"n": "ws after"}, "persist": True})
        frame = on_b.until(lambda f: "error" in f or f.get("action") == "published")
        return frame if "error" not in frame else None

    again = wait_for(ws_back, 10, "the socket's publishes accepted again")
    acked.append(again["id"])
    assert on_a.message(lambda f: f.get("id") == again["id"], timeout=10)
    stored = {m["id"] for m in _history(api_b, ch)}
    assert set(acked) <= stored, "nothing acknowledged was lost"
    on_a.close()
    on_b.close()


def test_a_partitioned_owner_comes_back_without_its_lease(
    nodes: List[Node], rclient: Any
) -> None:
    a, b = nodes
    wait_for(lambda: owner_port(rclient, TENANT) == a.port, 10, "the first node owns the tenant")
    api_a, api_b = Api(a.base_url, KEY), Api(b.base_url, KEY)
    ch = uniq()
    on_a = Sock(a.base_url, api_a.token("on-a"), ch)
    first = on_a.publish({"n": 0}, persist=True)["id"]
    token_before = int(rclient.get(f"cohrt:fence:{TENANT}"))

    a.pause()
    try:
        # B can't reach A; once A's lease runs out B takes the tenant over.
        def published_on_b() -> Any:
            try:
                r = api_b.request(
                    "POST", "/edge/realtime", params={"key": KEY},
                    json={"channel": ch, "data": {"n": 1}}, headers={"Idempotency-Key": "b1"},
                    timeout=10,
                )  # fmt: skip
            except requests.RequestException:
                return None
            return r.json()["id"] if r.status_code == 200 else None

        on_b_id = wait_for(published_on_b, FAILOVER_BOUND_S, "B publishes without A")
        assert owner_port(rclient, TENANT) == b.port
        # Sent to the frozen node: it reads this only after it comes back.
        on_a.send({"action": "publish", "data": {"n": 2}, "persist": True})
    finally:
        a.resume()
    answer = on_a.until(lambda f: "error" in f or f.get("action") == "published", timeout=15)
    assert owner_port(rclient, TENANT) == b.port, "the old owner did not take the lease back"
    assert int(rclient.get(f"cohrt:fence:{TENANT}")) > token_before
    rows = _history(api_b, ch)
    ids = [m["id"] for m in rows]
    assert ids == sorted(set(ids)) and first in ids and on_b_id in ids
    if "error" not in answer:
        # Forwarded to the new owner: stored after B's own write, in B's order.
        assert answer["id"] > on_b_id and answer["id"] in ids
    on_a.close()
