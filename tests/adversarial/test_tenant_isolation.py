"""Tenant isolation on every surface: two tenants side by side use the same names.

Same channel, same table, same Idempotency-Key, same meeting ids: nothing of
one tenant is visible to, reachable by, or changed by the other, whichever
credential is presented where. A negative ("nothing arrived") is proved by
order, not by waiting: a marker published after the other tenant's traffic
must be the next frame the socket reads.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
import websocket

from cohrt_sync.server import LocalServer
from tests.server._wire import Api, Sock, without_event
from tests.server.conftest import Cluster

KEY_A = "kia_6d0b2f9e4c8a1735"
KEY_B = "kib_1a7e3c5b9d2f8064"
TIMEOUT = 5.0


class Tenant:
    """Plain HTTP and WebSocket access for one application key."""

    def __init__(self, server: LocalServer, key: str) -> None:
        self.server = server
        self.base = server.base_url
        self.key = key
        self.http = requests.Session()

    def call(
        self, method: str, path: str, bearer: Optional[str] = None, **kw: Any
    ) -> requests.Response:
        if bearer is not None:
            kw.setdefault("headers", {})["Authorization"] = f"Bearer {bearer}"
        else:
            kw.setdefault("params", {})["key"] = self.key
        return self.http.request(method, self.base + path, timeout=TIMEOUT, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
        return r.json()

    def publish(self, channel: str, data: Any, **kw: Any) -> requests.Response:
        return self.call("POST", "/edge/realtime", json={"channel": channel, "data": data}, **kw)

    def history(self, channel: str, **kw: Any) -> List[Any]:
        body = self.ok("GET", "/edge/realtime/history", params={"channel": channel}, **kw)
        return [m["data"] for m in body["messages"]]

    def sql(self, query: str, params: Optional[list] = None) -> List[Dict[str, Any]]:
        body = self.ok("POST", "/edge/database", json={"query": query, "params": params or []})
        return list(body["results"])

    def token(self, user_id: str) -> str:
        return str(self.ok("POST", "/edge/realtime/token", json={"user_id": user_id})["token"])

    def session(self) -> str:
        return str(self.ok("POST", "/edge/session")["token"])

    def socket(self, channel: str, user_id: str, token: Optional[str] = None) -> Socket:
        return Socket(self, channel, token or self.token(user_id))


class Socket:
    """One channel socket; reads frames in order."""

    def __init__(self, tenant: Tenant, channel: str, token: str) -> None:
        self.tenant = tenant
        self.channel = channel
        url = tenant.base.replace("http", "ws", 1) + "/edge/realtime"
        query = requests.models.RequestEncodingMixin._encode_params(  # type: ignore[attr-defined]
            {"token": token, "channel": channel}
        )
        self.ws = websocket.create_connection(f"{url}?{query}", timeout=TIMEOUT)
        assert self.next()["action"] == "connected"
        subscribed = self.next()
        assert subscribed["action"] == "subscribed", subscribed
        self.presence = sorted(u["id"] for u in subscribed["presence"])

    def next(self) -> Dict[str, Any]:
        return dict(json.loads(self.ws.recv()))

    def publish(self, data: Any) -> Dict[str, Any]:
        self.ws.send(json.dumps({"action": "publish", "data": data}))
        while True:
            frame = self.next()
            if frame.get("action") == "published" or "error" in frame:
                assert "error" not in frame, frame
                return frame

    def frames_until_marker(self) -> List[Dict[str, Any]]:
        """Publish a marker on this tenant's channel over HTTP; every frame read before it."""
        marker = {"marker": uuid.uuid4().hex}
        assert self.tenant.publish(self.channel, marker).status_code == 200
        before = []
        while True:
            frame = self.next()
            if frame.get("data") == marker:
                return before
            before.append(frame)

    def close_code(self) -> int:
        """Read up to the server's close frame; its status code."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module", params=["one", "cluster"])
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One server, then a 2-node cluster behind a round-robin forwarder, so
    that each tenant's calls land on both nodes (docs/cluster.md)."""
    if request.param == "cluster":
        cluster = Cluster(keys=[KEY_A, KEY_B], rtk_delay_ms=0)
        try:
            yield cluster
        finally:
            cluster.stop()
        return
    with LocalServer([KEY_A, KEY_B], provision=True, rtk_delay_ms=0) as srv:
        yield srv


@pytest.fixture()
def a(server: Any) -> Tenant:
    return Tenant(server, KEY_A)


@pytest.fixture()
def b(server: Any) -> Tenant:
    return Tenant(server, KEY_B)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_history_of_a_channel_of_the_same_name(a: Tenant, b: Tenant) -> None:
    ch = uniq("shared")
    a.publish(ch, {"from": "a"})
    b.publish(ch, {"from": "b"})
    assert a.history(ch) == [{"from": "a"}]
    assert b.history(ch) == [{"from": "b"}]


def test_direct_sql_on_a_table_of_the_same_name(a: Tenant, b: Tenant) -> None:
    table = "notes_" + uuid.uuid4().hex[:8]
    for t, value in ((a, "only-a"), (b, "only-b")):
        t.sql(f"CREATE TABLE {table} (v TEXT)")
        t.sql(f"INSERT INTO {table} VALUES (?)", [value])
    assert a.sql(f"SELECT v FROM {table}") == [{"v": "only-a"}]
    assert b.sql(f"SELECT v FROM {table}") == [{"v": "only-b"}]
    b.sql(f"DROP TABLE {table}")
    assert a.sql(f"SELECT v FROM {table}") == [{"v": "only-a"}]
    # The messages table too: B's SQL sees none of A's rows.
    ch = uniq("sqlseen")
    a.publish(ch, {"pin": 4321})
    count = "SELECT count(*) AS n FROM realtime_messages WHERE channel = ? OR data LIKE '%4321%'"
    assert b.sql(count, [ch]) == [{"n": 0}]
    assert a.sql(count, [ch]) == [{"n": 1}]


def test_sockets_presence_and_publishes_on_a_channel_of_the_same_name(a: Tenant, b: Tenant) -> None:
    ch = uniq("room")
    alice = a.socket(ch, "alice")
    bob = b.socket(ch, "bob")
    try:
        assert alice.presence == ["alice"] and bob.presence == ["bob"]
        # B's traffic of every kind, on the same channel name ...
        carol = b.socket(ch, "carol")
        assert b.publish(ch, {"http": "b"}).status_code == 200
        bob.publish({"ws": "b"})
        carol.close()
        # ... reaches no socket of A: the next thing A reads is A's own marker.
        assert alice.frames_until_marker() == []
        # And the other way round.
        assert a.publish(ch, {"http": "a"}).status_code == 200
        alice.publish({"ws": "a"})
        seen = bob.frames_until_marker()
        assert all(f.get("data") not in ({"http": "a"}, {"ws": "a"}) for f in seen), seen
        assert all(f.get("user", {}).get("id") != "alice" for f in seen), seen
    finally:
        alice.close()
        bob.close()
    assert {"http": "b"} not in a.history(ch) and {"ws": "b"} not in a.history(ch)


def test_the_same_idempotency_key_in_both_tenants_does_not_collide(a: Tenant, b: Tenant) -> None:
    ch = uniq("idem")
    key = {"Idempotency-Key": "order-" + uuid.uuid4().hex}
    ra = a.publish(ch, {"from": "a"}, headers=dict(key))
    rb = b.publish(ch, {"from": "b"}, headers=dict(key))
    assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
    assert "Idempotent-Replayed" not in rb.headers, "B got A's replay"
    assert b.history(ch) == [{"from": "b"}]
    # A's retry is still A's replay, with A's answer.
    again = a.publish(ch, {"from": "a"}, headers=dict(key))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == ra.json()
    assert a.history(ch) == [{"from": "a"}]


def test_one_tenants_bearer_never_reaches_the_other(a: Tenant, b: Tenant) -> None:
    ch = uniq("bearer")
    b.publish(ch, {"secret": "b"})
    bearer_a = a.session()
    # A's bearer next to B's key: the bearer decides, and it is A's.
    r = a.http.get(
        a.base + "/edge/realtime/history",
        params={"channel": ch, "key": KEY_B},
        headers={"Authorization": f"Bearer {bearer_a}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and r.json()["messages"] == [], r.text
    assert a.publish(ch, {"via": "a-bearer"}, bearer=bearer_a).status_code == 200
    assert b.history(ch) == [{"secret": "b"}]
    # A socket token carries its tenant: whoever presents A's token, B's user
    # on the same channel name is not there and B's publications do not arrive.
    bob = b.socket(ch, "bob")
    sock = Socket(a, ch, a.token("mallory"))
    try:
        assert sock.presence == ["mallory"]
        b.publish(ch, {"to": "b-only"})
        bob.publish({"ws": "b-only"})
        assert sock.frames_until_marker() == []
    finally:
        sock.close()
        bob.close()
    # The marker went to A's channel, not B's.
    assert [d for d in b.history(ch) if "marker" in d] == []


def _rtk(t: Tenant, method: str, path: str, **kw: Any) -> requests.Response:
    return t.call(method, "/edge/realtimekit" + path, **kw)


def test_realtimekit_meetings_and_participants(a: Tenant, b: Tenant) -> None:
    meeting = a.ok("POST", "/edge/realtimekit/meetings", json={"title": "a-only"})["data"]
    mid = meeting["id"]
    part = a.ok(
        "POST",
        f"/edge/realtimekit/meetings/{mid}/participants",
        json={"preset_name": "group_call_host", "name": "Alice"},
    )["data"]
    pid = part["id"]
    b.ok("POST", "/edge/realtimekit/meetings", json={"title": "b-only"})
    listed = b.ok("GET", "/edge/realtimekit/meetings")["data"]
    assert mid not in [m["id"] for m in listed] and listed, listed
    assert [m["title"] for m in listed] == ["b-only"]
    for method, path, body in [
        ("GET", f"/meetings/{mid}", None),
        ("PATCH", f"/meetings/{mid}", {"title": "hijacked"}),
        ("GET", f"/meetings/{mid}/participants", None),
        ("POST", f"/meetings/{mid}/participants", {"preset_name": "group_call_host"}),
        ("GET", f"/meetings/{mid}/participants/{pid}", None),
        ("PATCH", f"/meetings/{mid}/participants/{pid}", {"name": "Mallory"}),
        ("POST", f"/meetings/{mid}/participants/{pid}/token", None),
        ("DELETE", f"/meetings/{mid}/participants/{pid}", None),
    ]:
        r = _rtk(b, method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    verdict = _rtk(b, "POST", "/_local/verify-token", json={"token": part["token"]}).json()
    assert verdict["data"]["valid"] is False, verdict
    # A's meeting and participant are as they were.
    assert a.ok("GET", f"/edge/realtimekit/meetings/{mid}")["data"]["title"] == "a-only"
    got = a.ok("GET", f"/edge/realtimekit/meetings/{mid}/participants/{pid}")["data"]
    assert got["name"] == "Alice"
    verdict = _rtk(a, "POST", "/_local/verify-token", json={"token": part["token"]}).json()
    assert verdict["data"]["valid"] is True, verdict


def test_deprovisioning_one_tenant_leaves_the_other_intact() -> None:
    with LocalServer([KEY_A, KEY_B], provision=True, rtk_delay_ms=0) as server:
        a, b = Tenant(server, KEY_A), Tenant(server, KEY_B)
        ch = "same-name"
        for t in (a, b):
            t.publish(ch, {"owner": t.key[:3]})
            t.sql("CREATE TABLE keep (v)")
            t.sql("INSERT INTO keep VALUES (1)")
            t.ok("POST", "/edge/realtimekit/meetings", json={"title": t.key[:3]})
        alice = a.socket(ch, "alice")
        bob = b.socket(ch, "bob")
        try:
            assert b.ok("DELETE", "/api/resources/realtime", bearer=KEY_B)["status"] == "deleted"
            assert b.ok("DELETE", "/api/resources/database", bearer=KEY_B)["status"] == "deleted"
            # B's socket was closed (1008); A's still works both ways.
            assert bob.close_code() == 1008
            alice.publish({"still": "here"})
            seen = alice.frames_until_marker()
            assert [f for f in seen if f.get("data") != {"still": "here"}] == [], seen
        finally:
            alice.close()
            bob.close()
        assert a.history(ch)[:2] == [{"owner": "kia"}, {"still": "here"}]
        assert a.sql("SELECT v FROM keep") == [{"v": 1}]
        meetings = a.ok("GET", "/edge/realtimekit/meetings")["data"]
        assert [m["title"] for m in meetings] == ["kia"]
        assert b.call("GET", "/edge/realtime/history", params={"channel": ch}).status_code == 403
        # B provisioned again starts empty; A is still untouched.
        b.ok("POST", "/api/resources/realtime", bearer=KEY_B, json={})
        assert b.history(ch) == []
        assert a.history(ch)[0] == {"owner": "kia"}


# -- endpoint by endpoint, through the conformance suite's wire helpers ------
# (were tests/server/test_isolation.py)


@pytest.fixture()
def base_url(server: Any) -> str:
    return str(server.base_url)


@pytest.fixture()
def api_a(base_url: str) -> Api:
    return Api(base_url, KEY_A)


@pytest.fixture()
def api_b(base_url: str) -> Api:
    return Api(base_url, KEY_B)


def test_history_is_per_tenant(api_a: Api, api_b: Api) -> None:
    ch = uniq("shared")
    api_a.publish_ok(ch, {"from": "a"})
    assert api_b.history_ok(ch) == []
    api_b.publish_ok(ch, {"from": "b"})
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"from": "a"}]
    assert [m["data"] for m in api_b.history_ok(ch)] == [{"from": "b"}]


def test_same_channel_name_is_a_different_channel_per_tenant(
    api_a: Api, api_b: Api, base_url: str
) -> None:
    ch = uniq("shared")
    with Sock(base_url, api_a.token("alice"), ch) as a, Sock(base_url, api_b.token("bob"), ch) as b:
        # presence does not cross tenants
        assert a.presence == [{"id": "alice", "name": None}]
        assert b.presence == [{"id": "bob", "name": None}]
        # publications do not cross tenants, whichever way they are made
        api_a.publish_ok(ch, {"http": "a"})
        a.publish({"ws": "a"})
        api_b.publish_ok(ch, {"http": "b"})
        assert a.message()["data"] == {"http": "a"}
        assert a.message()["data"] == {"ws": "a"}
        assert b.message()["data"] == {"http": "b"}, "B received A's publication"
        # and no join from the other tenant's user reached either socket
        for s in (a, b):
            assert all(without_event(f).get("action") != "join" for f in s.backlog), s.backlog


def test_sql_sees_only_own_tenant(api_a: Api, api_b: Api) -> None:
    ch = uniq("secret")
    api_a.publish_ok(ch, {"pin": 1234})
    assert api_a.sql_rows("SELECT count(*) AS n FROM realtime_messages WHERE channel=?", [ch]) == [
        {"n": 1}
    ]
    assert api_b.sql_rows("SELECT count(*) AS n FROM realtime_messages WHERE channel=?", [ch]) == [
        {"n": 0}
    ]
    assert api_b.sql_rows(
        "SELECT count(*) AS n FROM realtime_messages WHERE data LIKE '%1234%'"
    ) == [{"n": 0}]


def test_sql_tables_are_per_tenant(api_a: Api, api_b: Api) -> None:
    table = "iso_" + os.urandom(4).hex()
    assert api_a.sql(f"CREATE TABLE {table} (v)").status_code == 200
    assert api_a.sql(f"INSERT INTO {table} VALUES ('a-only')").status_code == 200
    r = api_b.sql(f"SELECT * FROM {table}")
    assert r.status_code == 400, r.text  # no such table for B
    names = [row["name"] for row in api_b.sql_rows("SELECT name FROM sqlite_master")]
    assert table not in names


def test_tokens_are_per_tenant(api_a: Api, api_b: Api, base_url: str) -> None:
    """A's socket token opens only A's channel namespace: B's subscriber never sees it."""
    ch = uniq("shared")
    with Sock(base_url, api_b.token("bob"), ch) as b:
        with Sock(base_url, api_a.token("mallory"), ch) as m:
            m.publish({"intrusion": True})
        api_b.publish_ok(ch, {"marker": 1}, persist=False)
        assert b.reply()["data"] == {"marker": 1}
    assert api_b.history_ok(ch) == []


def test_session_tokens_are_per_tenant(api_a: Api, api_b: Api) -> None:
    """A's edge session token reads A's data, never B's."""
    ch = uniq("shared")
    api_b.publish_ok(ch, {"b": 1})
    r = api_a.history(ch, bearer=api_a.session())
    assert r.status_code == 200 and r.json()["messages"] == []
