"""Tenant isolation: tenant A never sees or reaches tenant B's data, by any endpoint."""

from __future__ import annotations

import os

from ._wire import Api, Sock, uniq, without_event


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
