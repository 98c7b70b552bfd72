"""Many publishers at once (HTTP and WebSocket mixed): ack after commit, ordered ids, no loss."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

from ._wire import Api, Sock, uniq
from .conftest import KEY_A

N_WS = 25
N_HTTP = 25
PER = 8
TOTAL = (N_WS + N_HTTP) * PER


def test_fifty_concurrent_publishers(base_url: str) -> None:
    api = Api(base_url, KEY_A)
    ch = uniq("storm")
    subscribers = [Sock(base_url, api.token(f"sub{i}"), ch) for i in range(2)]
    publishers = [Sock(base_url, api.token(f"ws{i}"), ch) for i in range(N_WS)]
    barrier = threading.Barrier(N_WS + N_HTTP)
    lock = threading.Lock()
    acks: dict = {}  # publisher tag -> [(id, data), ...] in ack order
    uncommitted: list = []
    errors: list = []

    def probe(probe_api: Api, msg_id: int) -> None:
        """Right after the ack, another connection must already see the row."""
        rows = probe_api.sql_rows(
            "SELECT count(*) AS n FROM realtime_messages WHERE id = ?", [msg_id]
        )
        if rows != [{"n": 1}]:
            with lock:
                uncommitted.append(msg_id)

    def ws_publisher(i: int) -> None:
        tag = f"ws{i}"
        sock = publishers[i]
        probe_api = Api(base_url, KEY_A)
        try:
            barrier.wait(timeout=20)
            sent = [{"p": tag, "k": k} for k in range(PER)]
            for data in sent:  # pipelined: all frames first, then the acks
                sock.send({"action": "publish", "event": "message", "data": data})
            got = []
            for data in sent:
                ack = sock.until(lambda f: f.get("action") == "published" or "error" in f, 30)
                assert "error" not in ack, ack
                got.append((ack["id"], data))
                probe(probe_api, ack["id"])
            with lock:
                acks[tag] = got
        except BaseException as exc:
            errors.append((tag, repr(exc)))

    def http_publisher(i: int) -> None:
        tag = f"http{i}"
        own = Api(base_url, KEY_A)
        try:
            barrier.wait(timeout=20)
            got = []
            for k in range(PER):
                data = {"p": tag, "k": k}
                body = own.publish_ok(ch, data)
                got.append((body["id"], data))
                probe(own, body["id"])
            with lock:
                acks[tag] = got
        except BaseException as exc:
            errors.append((tag, repr(exc)))

    threads = [threading.Thread(target=ws_publisher, args=(i,)) for i in range(N_WS)]
    threads += [threading.Thread(target=http_publisher, args=(i,)) for i in range(N_HTTP)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, 45 - (time.monotonic() - started)))
    try:
        assert not any(t.is_alive() for t in threads), "publishers hung"
        assert not errors, errors[:5]
        assert len(acks) == N_WS + N_HTTP

        # ids strictly increasing in each publisher's ack order
        for tag, got in acks.items():
            ids = [i for i, _ in got]
            assert all(a < b for a, b in zip(ids, ids[1:])), (tag, ids)
        by_id = {i: data for got in acks.values() for i, data in got}
        assert len(by_id) == TOTAL, "two acks carried the same id"

        # every ack had a committed row at the time of the ack
        assert not uncommitted, uncommitted[:10]

        # the table holds exactly the acknowledged rows, with their data: none lost, none extra
        rows = api.sql_rows(
            "SELECT id, data FROM realtime_messages WHERE channel = ? ORDER BY id", [ch]
        )
        assert [r["id"] for r in rows] == sorted(by_id)
        assert all(json.loads(r["data"]) == by_id[r["id"]] for r in rows)

        # history agrees, page by page
        seen: list = []
        after = 0
        while True:
            page = api.history_ok(ch, after=after, limit=100)
            if not page:
                break
            seen.extend((m["id"], m["data"]) for m in page)
            after = page[-1]["id"]
        assert seen == sorted(by_id.items())

        # every subscriber saw every message once, in id order
        for sub in subscribers:
            frames = [sub.message(timeout=15) for _ in range(TOTAL)]
            ids = [f["id"] for f in frames]
            assert ids == sorted(by_id), "broadcast order differs from id order"
            assert all(f["data"] == by_id[f["id"]] for f in frames)
        # publishers' sockets saw the same stream
        for sock in publishers[:3]:
            ids = [sock.message(timeout=15)["id"] for _ in range(TOTAL)]
            assert ids == sorted(by_id)
    finally:
        for s in subscribers + publishers:
            s.close()


def test_interleaved_ws_publishes_keep_per_socket_order(base_url: str) -> None:
    """Two sockets publishing alternately: each subscriber sees one global id order."""
    api = Api(base_url, KEY_A)
    ch = uniq("pair")
    with Sock(base_url, api.token("a"), ch) as a, Sock(base_url, api.token("b"), ch) as b:
        for k in range(20):
            (a if k % 2 else b).send({"action": "publish", "data": {"k": k}})
        a_frames = [a.message() for _ in range(20)]
        b_frames = [b.message() for _ in range(20)]
        assert [f["id"] for f in a_frames] == [f["id"] for f in b_frames]
        ids = [f["id"] for f in a_frames]
        assert ids == sorted(ids) and len(set(ids)) == 20
        # each socket's own messages arrive in the order it sent them
        own_a = [f["data"]["k"] for f in a_frames if f["data"]["k"] % 2]
        assert own_a == sorted(own_a)


# Assumption (careful user): one subscriber that stops reading must not stall the channel for
# everyone else -- the server buffers for it or drops it, but acks and other deliveries go on.
def test_stalled_subscriber_does_not_stall_the_channel(base_url: str) -> None:
    api = Api(base_url, KEY_A)
    ch = uniq("stall")
    blob = "s" * 50_000
    stalled = Sock(base_url, api.token("sleeper"), ch)
    stalled.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        with Sock(base_url, api.token("reader"), ch) as reader:
            started = time.monotonic()
            n = 300  # ~15 MB: far beyond any socket buffer
            for k in range(n):
                api.publish_ok(ch, {"k": k, "blob": blob}, persist=False)
                if k % 25 == 0:  # keep the reader drained so only the sleeper lags
                    while reader.backlog or _readable(reader):
                        reader.next(timeout=5)
            got = 0
            while got < n:
                frame = reader.next(timeout=15)
                if "data" in frame:
                    got = frame["data"]["k"] + 1
            assert time.monotonic() - started < 40
    finally:
        stalled.abort()


def _readable(sock: Sock) -> bool:
    return bool(select.select([sock.ws.sock], [], [], 0)[0])
