"""A client connected to any node sees one service: fan-out, presence, tokens,
idempotency keys, socket caps and provisioning across two in-process nodes."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from typing import Any, List

import jwt
import pytest
from server._redis import RedisServer
from server._wire import Api, Sock, assert_envelope, poll, refusal, uniq

from cohrt_sync.server import LocalServer

from .conftest import KEY

FRESH = "kc_fresh_71d0e5a4b3c2"


@pytest.fixture()
def pair(redis_server: RedisServer) -> Iterator[List[Any]]:
    """Two nodes on one Redis and data dir; KEY provisioned, FRESH not."""
    with tempfile.TemporaryDirectory(prefix="cohrt-pair-") as data:
        servers = []
        try:
            for _ in range(2):
                servers.append(
                    LocalServer(
                        [KEY, FRESH],
                        data_dir=data,
                        cluster=redis_server.url,
                        max_tenant_sockets=4,
                    ).start()
                )
            servers[0].add_key(KEY, provision=True)
            yield servers
        finally:
            for srv in servers:
                srv.close()


def test_publishes_on_both_nodes_reach_every_socket_once_in_id_order(pair: List[Any]) -> None:
    a, b = pair
    api_a, api_b = Api(a.base_url, KEY), Api(b.base_url, KEY)
    ch = uniq()
    socks = [Sock(srv.base_url, api.token(f"u{i}"), ch) for i, (srv, api) in
             enumerate([(a, api_a), (b, api_b), (a, api_a), (b, api_b)])]  # fmt: skip
    per_publisher = 60

    def publish(api: Api, tag: str) -> None:
        for n in range(per_publisher):
            api.publish_ok(ch, {"tag": tag, "n": n})

    threads = [
        threading.Thread(target=publish, args=(Api(srv.base_url, KEY), tag))
        for srv, tag in ((a, "a"), (b, "b"))
    ]
    for t in threads:
        t.start()
    for s in socks[:2]:  # and over sockets too, interleaved with the HTTP ones
        for n in range(10):
            s.send({"action": "publish", "data": {"tag": "ws", "n": n}})
    for t in threads:
        t.join(30)
    total = 2 * per_publisher + 20
    seen = []
    for s in socks:
        got = [s.message(timeout=10) for _ in range(total)]
        ids = [m["id"] for m in got]
        assert ids == sorted(set(ids)), "once each, in the channel's id order"
        for tag in ("a", "b"):
            assert [m["data"]["n"] for m in got if m["data"]["tag"] == tag] == list(
                range(per_publisher)
            )
        seen.append(ids)
    assert all(ids == seen[0] for ids in seen), "every node delivers the same sequence"
    acks = [f for f in socks[0].backlog if f.get("action") == "published"]
    for _ in range(10 - len(acks)):
        acks.append(socks[0].until(lambda f: f.get("action") == "published"))
    assert [f["id"] for f in acks] == sorted(f["id"] for f in acks)
    for s in socks:
        s.close()


def test_a_user_on_both_nodes_joins_once_and_leaves_once(pair: List[Any]) -> None:
    a, b = pair
    api = Api(a.base_url, KEY)
    ch = uniq()
    with Sock(b.base_url, api.token("watcher"), ch) as watcher:
        first = Sock(a.base_url, api.token("alice", name="Alice"), ch)
        join = watcher.next()
        assert join["action"] == "join" and join["user"] == {"id": "alice", "name": "Alice"}
        second = Sock(b.base_url, api.token("alice", name="Alice"), ch)
        # `subscribed` lists users connected anywhere, each once.
        assert sorted(u["id"] for u in second.presence) == ["alice", "watcher"]
        first.close()
        with Sock(a.base_url, api.token("carol"), ch) as carol:
            assert sorted(u["id"] for u in carol.presence) == ["alice", "carol", "watcher"]
        frames = [watcher.next(), watcher.next()]
        assert [f["action"] for f in frames] == ["join", "leave"]
        assert {f["user"]["id"] for f in frames} == {"carol"}, "alice is still on node B"
        second.close()
        leave = watcher.next()
        assert leave["action"] == "leave" and leave["user"]["id"] == "alice" and leave["last_seen"]
        late = Sock(a.base_url, api.token("late"), ch)
        assert sorted(u["id"] for u in late.presence) == ["late", "watcher"]
        late.close()


def test_tokens_and_bearers_minted_on_one_node_work_on_the_other(pair: List[Any]) -> None:
    a, b = pair
    ch = uniq()
    token = Api(a.base_url, KEY).token("alice")
    with Sock(b.base_url, token, ch) as s:
        assert s.subscribed["action"] == "subscribed"
    bearer = Api(a.base_url, KEY).session()
    r = Api(b.base_url, KEY).publish(ch, {"n": 1}, bearer=bearer)
    assert r.status_code == 200, r.text
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    status, _, _ = refusal(b.base_url, token=forged, channel=ch)
    assert status == 401


def test_an_idempotency_key_is_shared_by_the_nodes(pair: List[Any]) -> None:
    a, b = pair
    ch = uniq()
    headers = {"Idempotency-Key": "same-key-on-both"}
    first = Api(a.base_url, KEY).publish_ok(ch, {"n": 1}, headers=headers)
    r = Api(b.base_url, KEY).publish(ch, {"n": 1}, headers=headers)
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert len(Api(b.base_url, KEY).history_ok(ch)) == 1


def test_the_socket_cap_counts_sockets_on_every_node(pair: List[Any]) -> None:
    a, b = pair
    api = Api(a.base_url, KEY)
    ch = uniq()
    socks = [Sock(a.base_url, api.token("x"), ch), Sock(a.base_url, api.token("y"), ch)]
    socks += [Sock(b.base_url, api.token("z"), ch), Sock(b.base_url, api.token("v"), ch)]
    # Each node hears of the other's sockets over the bus, a moment later.
    token = api.token("w")
    poll(lambda: _tenant_sockets(a, token) == _tenant_sockets(b, token) == 4)
    for srv in (a, b):
        status, body, _ = refusal(srv.base_url, token=token, channel=ch)
        assert status == 429 and "socket cap" in body["error"]["message"]
    socks.pop().close()
    poll(lambda: a.socket_count() + b.socket_count() == 3)
    again = poll(lambda: _opens(a.base_url, api.token("w"), ch), timeout=5)
    again.close()
    for s in socks:
        s.close()


def _tenant_sockets(srv: LocalServer, token: str) -> int:
    """The open sockets of ``token``'s tenant on every node, as ``srv``'s socket cap counts them."""
    tenant = jwt.decode(token, options={"verify_signature": False})["tid"]
    return int(srv._call(lambda core: core.sockets.per_tenant[tenant]))


def _opens(base_url: str, token: str, ch: str) -> Any:
    try:
        return Sock(base_url, token, ch)
    except Exception:
        return None


def test_provisioning_on_one_node_is_seen_by_the_other(pair: List[Any]) -> None:
    a, b = pair
    ch = uniq()
    assert_envelope(Api(b.base_url, FRESH).mint_resp({"user_id": "u"}), 403, "FAILED_PRECONDITION")
    r = Api(a.base_url, FRESH).provision()
    assert r.status_code in (200, 201), r.text
    poll(lambda: Api(b.base_url, FRESH).mint_resp({"user_id": "u"}).status_code == 200)
    Api(b.base_url, FRESH).publish_ok(ch, {"n": 1})
    assert [m["data"] for m in Api(a.base_url, FRESH).history_ok(ch)] == [{"n": 1}]
    rows = Api(b.base_url, FRESH).sql_rows("SELECT count(*) AS n FROM realtime_messages")
    assert rows == [{"n": 1}]


def test_a_node_with_another_data_dir_refuses_to_start(
    pair: List[Any], redis_server: RedisServer, tmp_path: Any
) -> None:
    from cohrt_sync.server.cluster import ClusterUnavailable

    stray = LocalServer([KEY], data_dir=tmp_path / "elsewhere", cluster=redis_server.url)
    with pytest.raises(ClusterUnavailable, match="is not the data dir of the cluster"):
        stray.start()
    stray.close()
    assert pair[0].running and pair[1].running
