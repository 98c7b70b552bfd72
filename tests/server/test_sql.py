"""Direct SQL: POST /edge/database (spec: Direct SQL; DESIGN §2 D1 shape; issue 2 sandboxing)."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from ._wire import Api, Sock, assert_envelope, uniq
from .conftest import KEY_DROP


def test_select_shape_and_meta(api_a: Api) -> None:
    r = api_a.sql("SELECT 1 AS one, 'two' AS two, NULL AS nil, 2.5 AS half")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["results"] == [{"one": 1, "two": "two", "nil": None, "half": 2.5}]
    meta = body["meta"]
    assert set(meta) >= {"changes", "last_row_id", "duration_ms"}, meta
    assert isinstance(meta["duration_ms"], (int, float)) and meta["duration_ms"] >= 0


def test_params_are_bound(api_a: Api) -> None:
    rows = api_a.sql_rows("SELECT ? AS a, ? AS b, ? AS c", ["x'; DROP TABLE t; --", 7, None])
    assert rows == [{"a": "x'; DROP TABLE t; --", "b": 7, "c": None}]


def test_spec_example_query_on_realtime_messages(api_a: Api) -> None:
    ch = uniq()
    acks = [api_a.publish_ok(ch, {"n": i}, event="e") for i in range(3)]
    rows = api_a.sql_rows(
        "SELECT * FROM realtime_messages WHERE channel = ? ORDER BY id DESC LIMIT 100", [ch]
    )
    assert [r["id"] for r in rows] == [a["id"] for a in reversed(acks)]
    for n, (row, ack) in enumerate(zip(reversed(rows), acks)):
        assert set(row) == {"id", "channel", "event", "data", "created_at_ms"}, row
        assert row["channel"] == ch and row["event"] == "e"
        assert row["created_at_ms"] == ack["created_at_ms"]
        assert json.loads(row["data"]) == {"n": n}  # stored as JSON text


def test_realtime_messages_has_channel_id_index(api_a: Api) -> None:
    rows = api_a.sql_rows(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'realtime_messages'"
    )
    cols = []
    for row in rows:
        cols.append(
            [
                c["name"]
                for c in api_a.sql_rows("SELECT name FROM pragma_index_info(?)", [row["name"]])
            ]
        )
    assert ["channel", "id"] in cols, cols


def test_write_meta_changes_and_last_row_id(api_a: Api) -> None:
    table = "t_" + uniq("x").split(":")[1]
    assert api_a.sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT)").status_code == 200
    r = api_a.sql(f"INSERT INTO {table} (v) VALUES (?), (?)", ["a", "b"])
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert r.json()["meta"]["changes"] == 2
    assert r.json()["meta"]["last_row_id"] == 2
    assert r.json()["results"] == []
    r = api_a.sql(f"UPDATE {table} SET v = 'z'")
    assert r.json()["meta"]["changes"] == 2
    assert api_a.sql_rows(f"SELECT v FROM {table} ORDER BY id") == [{"v": "z"}, {"v": "z"}]


def test_meta_changes_counts_writes_that_start_with_with(api_a: Api) -> None:
    table = "t_" + uniq("x").split(":")[1]
    assert api_a.sql(f"CREATE TABLE {table} (x INTEGER)").status_code == 200
    r = api_a.sql(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 120)"
        f" INSERT INTO {table} SELECT n FROM c"
    )
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["changes"] == 120
    r = api_a.sql(f"WITH d AS (SELECT 50 AS m) DELETE FROM {table} WHERE x <= (SELECT m FROM d)")
    assert r.json()["meta"]["changes"] == 50
    # A read after those writes changed nothing, whatever SQLite's changes() still says.
    r = api_a.sql(f"WITH d AS (SELECT 1) SELECT count(*) AS n FROM {table}")
    assert r.json()["meta"]["changes"] == 0 and r.json()["results"] == [{"n": 70}]
    assert r.json()["meta"]["rows_read"] == 1


def test_bearer_session(api_a: Api) -> None:
    r = api_a.sql("SELECT 41 + 1 AS n", bearer=api_a.session())
    assert r.status_code == 200 and r.json()["results"] == [{"n": 42}]


@pytest.mark.parametrize(
    "query,params",
    [
        ("SELEC 1", []),
        ("SELECT * FROM no_such_table", []),
        ("SELECT ?", []),  # wrong number of bindings
        ("SELECT ?", [1, 2]),
        ("", []),
    ],
)
def test_sql_error_is_400(api_a: Api, query: str, params: list) -> None:
    assert_envelope(api_a.sql(query, params), 400)


@pytest.mark.parametrize(
    "body",
    [{}, {"query": 5}, {"query": None}, {"query": "SELECT 1", "params": "x"}, {"params": []}],
)
def test_bad_sql_body_is_400(api_a: Api, body: dict) -> None:
    r = api_a.request("POST", "/edge/database", params={"key": api_a.key}, json=body)
    assert_envelope(r, 400)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"", b'"SELECT 1"'])
def test_non_object_sql_body_is_400(api_a: Api, raw: bytes) -> None:
    r = api_a.post_raw("/edge/database", raw)
    assert_envelope(r, 400)


def _refused(api: Api, query: str, params: list) -> None:
    r = api.sql(query, params)
    assert r.status_code in (400, 403), (r.status_code, r.text)
    assert_envelope(r, r.status_code)


@pytest.mark.parametrize(
    "query",
    [
        "ATTACH DATABASE '{path}' AS other",
        "attach database '{path}' as other",
        "/* hi */ ATTACH '{path}' AS other",
        "ATTACH DATABASE ':memory:' AS mem",
        "ATTACH DATABASE 'file:{path}?mode=rwc' AS other",
        "VACUUM INTO '{path}'",
        "vacuum main into '{path}'",
    ],
)
def test_attach_and_vacuum_into_are_refused(api_a: Api, query: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "escape.db")
        _refused(api_a, query.format(path=path), [])
        assert not os.path.exists(path), "the server wrote outside the tenant database"


def test_attach_with_bound_path_is_refused(api_a: Api) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bound.db")
        _refused(api_a, "ATTACH DATABASE ? AS other", [path])
        assert not os.path.exists(path)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT load_extension('/nonexistent/ext')",
        "SELECT load_extension('libc.so.6', 'puts')",
    ],
)
def test_extension_loading_is_refused(api_a: Api, query: str) -> None:
    _refused(api_a, query, [])


def test_server_answers_after_refusals(api_a: Api) -> None:
    assert api_a.sql_rows("SELECT 1 AS ok") == [{"ok": 1}]


def test_only_the_tenant_database_is_visible(api_a: Api) -> None:
    r = api_a.sql("PRAGMA database_list")
    if r.status_code == 200:
        names = sorted(row["name"] for row in r.json()["results"])
        assert names in (["main"], ["main", "temp"]), r.json()
    else:  # refusing the pragma outright is fine too
        assert r.status_code in (400, 403), r.text
        assert_envelope(r, r.status_code)


# --- a failing write: the tenant KEY_DROP loses its table on purpose ---
def test_failed_persist_is_an_error_and_is_not_broadcast(base_url: str, api_a: Api) -> None:
    api = Api(base_url, KEY_DROP)
    ch = uniq()
    tok_a, tok_b = api.token("alice"), api.token("bob")
    with Sock(base_url, tok_a, ch) as a, Sock(base_url, tok_b, ch) as b:
        assert a.next()["action"] == "join"
        dropped = api.sql("DROP TABLE realtime_messages")
        assert dropped.status_code == 200, dropped.text

        a.send({"action": "publish", "event": "message", "data": {"lost": 1}})
        err = a.next()
        assert set(err) == {"error"}, err
        assert err["error"].startswith("Failed to persist message: "), err
        assert len(err["error"]) > len("Failed to persist message: ")

        r = api.publish(ch, {"lost": 2})
        assert_envelope(r, 500, "INTERNAL")

        # non-persisted traffic still flows, and is the first thing either socket sees
        a.publish({"eph": 1}, persist=False)
        for s in (a, b):
            frame = s.next()
            assert frame.get("data") == {"eph": 1}, f"a failed write was broadcast: {frame}"
        # the socket survived the failure
        a.send({"action": "publish", "data": {"lost": 3}})
        assert a.next()["error"].startswith("Failed to persist message: ")
    # other tenants are untouched
    api_a.publish_ok(uniq(), {"fine": True})


def test_temp_store_directory_is_refused(api_a: Api) -> None:
    """A pragma that points SQLite at a path outside the tenant database."""
    with tempfile.TemporaryDirectory() as d:
        _refused(api_a, f"PRAGMA temp_store_directory = '{d}'", [])


# Assumption: ids are never reused, even after the newest rows are deleted by direct SQL, so a
# client catching up with `history?after=<last id seen>` can never skip a new message.
def test_ids_are_never_reused_after_sql_delete(api_a: Api) -> None:
    ch = uniq()
    first = api_a.publish_ok(ch, {"n": 1})["id"]
    top = api_a.sql_rows("SELECT max(id) AS m FROM realtime_messages")[0]["m"]
    assert top >= first
    r = api_a.sql("DELETE FROM realtime_messages WHERE id = ?", [top])
    assert r.status_code == 200 and r.json()["meta"]["changes"] == 1
    again = api_a.publish_ok(ch, {"n": 2})["id"]
    assert again > top, (again, top)
    assert [m["data"] for m in api_a.history_ok(ch, after=top)] == [{"n": 2}]
