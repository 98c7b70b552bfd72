"""Direct SQL trying to leave its sandbox: every known escape, refused.

Each attack is sent over the wire to a real server; the answers must be the
error envelope, and the server and its other tenants must be unharmed.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, List

import pytest
import requests
import websocket

from cohrt_sync.server import LocalServer
from cohrt_sync.server.sqlpolicy import IDEMPOTENCY_TABLE, SAFE_PRAGMAS, USAGE_TABLE

from ._proc import ServerProcess
from ._sql import publish, rows, sql

KEY = "kesc_4f1d2c3b5a697887"
KEY_OTHER = "kesc_other_90a1b2c3d4"
#: A tenant whose realtime_messages table is replaced on purpose.
KEY_SWAP = "kesc_swap_5e6f7a8b9c"
#: A tenant whose realtime_messages table hands out random rowids.
KEY_SCATTER = "kesc_scatter_0d1e2f3a"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    srv = LocalServer([KEY, KEY_OTHER, KEY_SWAP, KEY_SCATTER], provision=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def assert_refused(r: requests.Response, fragment: str = "") -> str:
    """A 403 PERMISSION_DENIED envelope whose message contains ``fragment``."""
    assert r.status_code == 403, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["status"] == "PERMISSION_DENIED" and err["code"] == 403, err
    assert err["message"].startswith("query refused: "), err
    assert fragment.lower() in err["message"].lower(), err
    return str(err["message"])


def assert_not_run(r: requests.Response) -> None:
    """Refused (403) or unknown to this SQLite build (400): never run."""
    assert r.status_code in (400, 403), (r.status_code, r.text[:300])
    assert set(r.json()) == {"error"}, r.text


def channel() -> str:
    return "esc:" + uuid.uuid4().hex[:12]


# -- fts3_tokenizer and the native-pointer surface ------------------------------------------
def test_fts3_tokenizer_segfault_recipe_is_refused_and_the_server_lives() -> None:
    """This recipe crashes a process that allows it with SIGSEGV; run it in a child."""
    recipe = [
        "SELECT fts3_tokenizer('evil', x'4141414141414141')",
        "CREATE VIRTUAL TABLE f USING fts3(content, tokenize=evil)",
        "INSERT INTO f (content) VALUES ('boom')",
    ]
    with ServerProcess(["--key", KEY, "--key", KEY_OTHER, "--provision"]) as proc:
        url = proc.base_url
        answers: List[Any] = []
        for query in recipe:
            try:
                answers.append(sql(url, KEY, query))
            except requests.ConnectionError as e:
                answers.append(e)
        assert proc.alive(), f"the server died: {proc.proc and proc.proc.returncode}"
        assert_refused(answers[0], "fts3_tokenizer")
        assert_not_run(answers[1])
        assert_not_run(answers[2])
        assert rows(url, KEY_OTHER, "SELECT 1 AS ok") == [{"ok": 1}]
        assert rows(url, KEY, "SELECT 2 AS ok") == [{"ok": 2}]


@pytest.mark.parametrize(
    "query,params",
    [
        ("SELECT fts3_tokenizer('evil', x'4141414141414141')", []),
        ("SELECT fts3_tokenizer(?, ?)", ["evil", "AAAAAAAA"]),
        ("SELECT hex(fts3_tokenizer('simple')) AS leak", []),
        ("SELECT fts3_tokenizer('porter')", []),
        ("SELECT FTS3_TOKENIZER('simple')", []),
        ("SELECT length(fts3_tokenizer('unicode61'))", []),
    ],
)
def test_fts3_tokenizer_is_refused_in_both_forms(
    server: LocalServer, query: str, params: List[Any]
) -> None:
    assert_refused(sql(server.base_url, KEY, query, params), "fts3_tokenizer")


@pytest.mark.parametrize(
    "query,fragment",
    [
        ("CREATE VIRTUAL TABLE v USING fts3(content, tokenize=simple)", "fts3"),
        ("CREATE VIRTUAL TABLE v USING fts4(content, tokenize=porter)", "fts4"),
        ("CREATE VIRTUAL TABLE v USING fts4(content)", "fts4"),
        ("CREATE VIRTUAL TABLE v USING fts3tokenize(simple)", "fts3tokenize"),
        ("CREATE VIRTUAL TABLE v USING fts4aux(x)", "fts4aux"),
        ("CREATE VIRTUAL TABLE v USING rtree(id, x0, x1)", "rtree"),
        ("CREATE VIRTUAL TABLE v USING rtree_i32(id, x0, x1)", "rtree_i32"),
        ("CREATE VIRTUAL TABLE v USING dbstat", "dbstat"),
        ("CREATE VIRTUAL TABLE v USING sqlite_stmt", "sqlite_stmt"),
        ("CREATE VIRTUAL TABLE v USING json_each", "json_each"),
        ("CREATE VIRTUAL TABLE v USING sqlite_dbpage", "sqlite_dbpage"),
        ("CREATE VIRTUAL TABLE temp.v USING fts5(body)", "temporary"),
    ],
)
def test_virtual_table_modules_outside_the_allow_list_are_refused(
    server: LocalServer, query: str, fragment: str
) -> None:
    assert_refused(sql(server.base_url, KEY, query), fragment)


def test_fts5_is_offered_like_d1(server: LocalServer) -> None:
    url = server.base_url
    table = "docs_" + uuid.uuid4().hex[:8]
    assert sql(url, KEY, f"CREATE VIRTUAL TABLE {table} USING fts5(body)").status_code == 200
    r = sql(url, KEY, f"INSERT INTO {table} (body) VALUES (?), (?)", ["hello world", "bye"])
    assert r.status_code == 200, r.text
    found = rows(
        url,
        KEY,
        f"SELECT highlight({table}, 0, '[', ']') AS h, snippet({table}, 0, '[', ']', '…', 4) AS s,"
        f" bm25({table}) < 0 AS ranked FROM {table} WHERE {table} MATCH 'hello'",
    )
    assert found == [{"h": "[hello] world", "s": "[hello] world", "ranked": 1}]
    vocab = table + "_v"
    assert (
        sql(url, KEY, f"CREATE VIRTUAL TABLE {vocab} USING fts5vocab({table}, row)").status_code
        == 200
    )
    terms = [r["term"] for r in rows(url, KEY, f"SELECT term FROM {vocab} ORDER BY term")]
    assert terms == ["bye", "hello", "world"]


@pytest.mark.skipif(
    not hasattr(sqlite3.Connection, "setconfig"), reason="SQLITE_DBCONFIG_DEFENSIVE needs 3.12+"
)
def test_fts5_shadow_tables_are_read_only_where_python_allows(server: LocalServer) -> None:
    url = server.base_url
    table = "shadow_" + uuid.uuid4().hex[:8]
    assert sql(url, KEY, f"CREATE VIRTUAL TABLE {table} USING fts5(body)").status_code == 200
    r = sql(url, KEY, f"INSERT INTO {table}_data VALUES (99, x'00')")
    assert r.status_code == 400 and "may not be modified" in r.text, r.text


@pytest.mark.parametrize(
    "query,fragment",
    [
        ("SELECT load_extension('/nonexistent/ext')", "extension"),
        ("SELECT load_extension('libc.so.6', 'puts')", "extension"),
        ("SELECT fts5(NULL)", "fts5()"),
        ("SELECT rtreenode(2, x'000100000000000000010000000000000000')", "rtreenode"),
        ("SELECT rtreedepth(x'0001')", "rtreedepth"),
        ("SELECT matchinfo(x'00')", "matchinfo"),
        ("SELECT offsets(x'00')", "offsets"),
        ("SELECT optimize(x'00')", "optimize"),
    ],
)
def test_native_functions_are_refused(server: LocalServer, query: str, fragment: str) -> None:
    assert_refused(sql(server.base_url, KEY, query), fragment)


@pytest.mark.parametrize(
    "query,params",
    [
        ("ATTACH DATABASE ':memory:' AS mem", []),
        ("ATTACH DATABASE ? AS other", ["/tmp/cohrt-escape.db"]),
        ("ATTACH 'file:cohrt-escape?mode=memory' AS m", []),
        ("DETACH DATABASE main", []),
        ("VACUUM INTO '/tmp/cohrt-escape-copy.db'", []),
    ],
)
def test_other_database_files_are_refused(
    server: LocalServer, query: str, params: List[Any]
) -> None:
    assert_refused(sql(server.base_url, KEY, query, params))
    assert not Path("/tmp/cohrt-escape.db").exists()
    assert not Path("/tmp/cohrt-escape-copy.db").exists()


# -- pragmas, as statements and as table-valued functions ---------------------------------
def _all_pragmas(server: LocalServer) -> List[str]:
    return [r["name"] for r in rows(server.base_url, KEY, "PRAGMA pragma_list")]


def test_every_pragma_outside_the_allow_list_is_refused_in_every_form(server: LocalServer) -> None:
    names = _all_pragmas(server)
    assert "journal_mode" in names and "writable_schema" in names, names
    url = server.base_url
    for name in names:
        if name in SAFE_PRAGMAS:
            continue
        assert_refused(sql(url, KEY, f"PRAGMA {name}"), f"PRAGMA {name}")
        assert_refused(sql(url, KEY, f"PRAGMA main.{name}"), f"PRAGMA {name}")
        # Table-valued forms exist only for some pragmas; none may run.
        assert_not_run(sql(url, KEY, f"SELECT * FROM pragma_{name}"))
        assert_not_run(sql(url, KEY, f"SELECT * FROM main.pragma_{name}"))


@pytest.mark.parametrize(
    "query,fragment",
    [
        ("PRAGMA journal_mode = DELETE", "journal_mode"),
        ("PRAGMA writable_schema = ON", "writable_schema"),
        ("PRAGMA max_page_count = 1073741823", "max_page_count"),
        ("PRAGMA journal_size_limit = -1", "journal_size_limit"),
        ("PRAGMA page_size = 65536", "page_size"),
        ("PRAGMA page_count = 1", "page_count"),
        ("PRAGMA temp_store = MEMORY", "temp_store"),
        ("PRAGMA schema_version = 1", "schema_version"),
        ("PRAGMA trusted_schema = ON", "trusted_schema"),
        ("PRAGMA mmap_size = 268435456", "mmap_size"),
        ("PRAGMA database_list", "database_list"),
        ("SELECT * FROM pragma_journal_mode", "journal_mode"),
        ("SELECT * FROM pragma_database_list", "database_list"),
        ("SELECT * FROM pragma_max_page_count", "max_page_count"),
        ("SELECT * FROM pragma_module_list", "module_list"),
        ("SELECT * FROM pragma_integrity_check", "integrity_check"),
        ("SELECT name FROM pragma_table_info(?)", "idempotency"),
    ],
)
def test_unsafe_pragmas_are_refused(server: LocalServer, query: str, fragment: str) -> None:
    params = [IDEMPOTENCY_TABLE] if "?" in query else []
    assert_refused(sql(server.base_url, KEY, query, params), fragment)


def test_safe_pragmas_still_work(server: LocalServer) -> None:
    url = server.base_url
    cols = rows(url, KEY, "SELECT name FROM pragma_table_info('realtime_messages') ORDER BY cid")
    assert [c["name"] for c in cols] == ["id", "channel", "event", "data", "created_at_ms"]
    assert rows(url, KEY, "PRAGMA user_version = 3") == []
    assert rows(url, KEY, "PRAGMA user_version") == [{"user_version": 3}]
    assert rows(url, KEY, "SELECT count(*) > 0 AS n FROM pragma_function_list") == [{"n": 1}]


# -- raw pages ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM sqlite_dbpage",
        "SELECT data FROM sqlite_dbpage WHERE pgno = 1",
        "UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 1",
        "INSERT INTO sqlite_dbpage (pgno, data) VALUES (1, zeroblob(4096))",
    ],
)
def test_sqlite_dbpage_is_never_run(server: LocalServer, query: str) -> None:
    assert_not_run(sql(server.base_url, KEY, query))
    assert rows(server.base_url, KEY, "SELECT count(*) AS n FROM sqlite_master")[0]["n"] > 0


# -- temp objects and triggers -------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "CREATE TEMP TABLE t (x)",
        "CREATE TEMPORARY TABLE t AS SELECT zeroblob(1000) AS b",
        "CREATE TABLE temp.t (x)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE VIEW temp.v AS SELECT 1",
        "CREATE TEMP TRIGGER t BEFORE INSERT ON realtime_messages BEGIN SELECT RAISE(IGNORE); END",
        "CREATE TRIGGER temp.t AFTER INSERT ON main.realtime_messages"
        " BEGIN DELETE FROM realtime_messages WHERE id = new.id; END",
    ],
)
def test_temp_objects_are_refused(server: LocalServer, query: str) -> None:
    message = assert_refused(sql(server.base_url, KEY, query))
    assert "temporary" in message or "triggers on realtime_messages" in message, message


@pytest.mark.parametrize(
    "query",
    [
        "CREATE TRIGGER t BEFORE INSERT ON realtime_messages BEGIN SELECT RAISE(IGNORE); END",
        "CREATE TRIGGER t AFTER INSERT ON main.realtime_messages"
        " BEGIN DELETE FROM realtime_messages WHERE id = new.id; END",
        'CREATE TRIGGER t AFTER INSERT ON "REALTIME_MESSAGES"'
        " BEGIN UPDATE realtime_messages SET data = 'x' WHERE id = new.id; END",
        "CREATE TRIGGER IF NOT EXISTS t BEFORE UPDATE ON realtime_messages BEGIN SELECT 1; END",
    ],
)
def test_triggers_on_realtime_messages_are_refused(server: LocalServer, query: str) -> None:
    assert_refused(sql(server.base_url, KEY, query), "triggers on")


def test_acks_stay_true_after_trigger_attempts(server: LocalServer) -> None:
    """A trigger that swallows inserts would make publishes ack "id": 0 with nothing stored."""
    url = server.base_url
    sql(
        url,
        KEY,
        "CREATE TEMP TRIGGER lie BEFORE INSERT ON realtime_messages"
        " BEGIN SELECT RAISE(IGNORE); END",
    )
    sql(
        url,
        KEY,
        "CREATE TRIGGER lie2 BEFORE INSERT ON realtime_messages BEGIN SELECT RAISE(IGNORE); END",
    )
    ch = channel()
    ids = []
    for n in range(3):
        r = publish(url, KEY, ch, {"n": n})
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    assert all(i > 0 for i in ids), ids
    stored = rows(url, KEY, "SELECT id FROM realtime_messages WHERE channel = ? ORDER BY id", [ch])
    assert [r["id"] for r in stored] == ids


def test_a_trigger_renamed_into_place_fails_publishes_instead_of_lying(server: LocalServer) -> None:
    url = server.base_url
    ddl = [
        "CREATE TABLE decoy (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,"
        " event TEXT NOT NULL, data TEXT NOT NULL, created_at_ms INTEGER NOT NULL)",
        "CREATE TRIGGER swallow BEFORE INSERT ON decoy BEGIN SELECT RAISE(IGNORE); END",
        "DROP TABLE realtime_messages",
        "ALTER TABLE decoy RENAME TO realtime_messages",
    ]
    for statement in ddl:
        assert sql(url, KEY_SWAP, statement).status_code == 200, statement
    r = publish(url, KEY_SWAP, channel(), {"lost": True})
    assert r.status_code == 500, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("Failed to persist message: ") and "swallow" in message, message
    assert rows(url, KEY_SWAP, "SELECT count(*) AS n FROM realtime_messages") == [{"n": 0}]
    # Dropping the trigger is the way out.
    assert sql(url, KEY_SWAP, "DROP TRIGGER swallow").status_code == 200
    r = publish(url, KEY_SWAP, channel(), {"kept": True})
    assert r.status_code == 200 and r.json()["id"] > 0, r.text


def test_acks_carry_the_stored_ids_when_the_table_hands_out_random_rowids(
    server: LocalServer,
) -> None:
    """Past the largest rowid SQLite picks rowids at random: a batch's ids are not consecutive."""
    url = server.base_url
    ddl = [
        "DROP TABLE realtime_messages",
        "CREATE TABLE realtime_messages (id INTEGER PRIMARY KEY, channel TEXT NOT NULL,"
        " event TEXT NOT NULL, data TEXT NOT NULL, created_at_ms INTEGER NOT NULL)",
        "INSERT INTO realtime_messages VALUES (9223372036854775807, 'c', 'e', '0', 0)",
    ]
    for statement in ddl:
        assert sql(url, KEY_SCATTER, statement).status_code == 200, statement
    token = requests.post(
        url + "/edge/realtime/token", params={"key": KEY_SCATTER}, json={"user_id": "u"}, timeout=5
    ).json()["token"]
    ch = channel()
    ws = websocket.create_connection(
        f"{server.ws_url}/edge/realtime?channel={ch}&token={token}", timeout=10
    )
    try:
        ws.recv(), ws.recv()  # connected, subscribed
        for i in range(40):  # sent back to back: the server writes them in batches
            ws.send(json.dumps({"action": "publish", "data": {"i": i}}))
        acks: List[int] = []
        while len(acks) < 40:
            frame = json.loads(ws.recv())
            assert "error" not in frame, frame
            if frame.get("action") == "published":
                acks.append(frame["id"])
    finally:
        ws.close()
    query = "SELECT id, data FROM realtime_messages WHERE channel = ?"
    stored = rows(url, KEY_SCATTER, query, [ch])
    by_id = {r["id"]: json.loads(r["data"])["i"] for r in stored}
    assert [by_id[id_] for id_ in acks] == list(range(40))


def test_a_trigger_already_in_the_file_fails_publishes(tmp_path: Path) -> None:
    """A database written by an older server may hold a trigger direct SQL can't make now."""
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        assert publish(srv.base_url, KEY, channel(), 1).status_code == 200
        (path,) = (tmp_path / "tenants").glob("*.sqlite3")
        with sqlite3.connect(str(path)) as db:
            db.execute(
                "CREATE TRIGGER old AFTER INSERT ON realtime_messages"
                " BEGIN DELETE FROM realtime_messages WHERE id = new.id; END"
            )
        db.close()
        r = publish(srv.base_url, KEY, channel(), 2)
        assert r.status_code == 500, r.text
        assert "old" in r.json()["error"]["message"], r.text


# -- transaction control, including statements the server ran itself ----------------------
@pytest.mark.parametrize(
    "query",
    [
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "BEGIN",
        "BEGIN EXCLUSIVE",
        "END",
        "SAVEPOINT x",
        "SAVEPOINT x",
        "RELEASE x",
        "ROLLBACK TO x",
    ],
)
def test_transaction_control_is_refused_even_after_the_server_used_it(
    server: LocalServer, query: str
) -> None:
    url = server.base_url
    # The server's own BEGIN IMMEDIATE/COMMIT run first, as before the attack.
    assert publish(url, KEY, channel(), {"warm": True}).status_code == 200
    assert_refused(sql(url, KEY, query), "transaction control")
    assert_refused(sql(url, KEY, query), "transaction control")
    # Nothing was left open: the tenant's writes and publishes go on.
    assert publish(url, KEY, channel(), {"after": query}).status_code == 200


# -- the idempotency and usage tables are the server's -----------------------------------
_SERVER_TABLE_ATTACKS = [
    "SELECT * FROM {t}",
    "SELECT count(*) FROM main.{t}",
    "INSERT INTO {t} ({c}) VALUES (1)",
    "UPDATE {t} SET {c} = 1",
    "DELETE FROM {t}",
    "DROP TABLE {t}",
    "ALTER TABLE {t} RENAME TO mine",
    "ALTER TABLE {t} ADD COLUMN x",
    "CREATE INDEX steal ON {t} ({c})",
    "CREATE TRIGGER steal AFTER INSERT ON {t} BEGIN SELECT 1; END",
    "PRAGMA index_list({t})",
]


@pytest.mark.parametrize(("table", "column"), [(IDEMPOTENCY_TABLE, "id"), (USAGE_TABLE, "n")])
@pytest.mark.parametrize("query", _SERVER_TABLE_ATTACKS)
def test_the_servers_tables_are_out_of_reach(
    server: LocalServer, query: str, table: str, column: str
) -> None:
    attack = query.format(t=table, c=column)
    assert_refused(sql(server.base_url, KEY, attack), "server's own tables")


def test_the_idempotency_index_is_out_of_reach(server: LocalServer) -> None:
    query = f"DROP INDEX {IDEMPOTENCY_TABLE}_created"
    assert_refused(sql(server.base_url, KEY, query), "server's own tables")


def test_the_idempotency_table_can_not_be_read_through_a_view(server: LocalServer) -> None:
    url = server.base_url
    name = "peek_" + uuid.uuid4().hex[:8]
    sql(url, KEY, f"CREATE VIEW {name} AS SELECT * FROM {IDEMPOTENCY_TABLE}")
    assert_refused(sql(url, KEY, f"SELECT * FROM {name}"), "server's own tables")


def test_other_tenants_are_untouched_by_the_attacks(server: LocalServer) -> None:
    url = server.base_url
    ch = channel()
    r = publish(url, KEY_OTHER, ch, {"fine": True})
    assert r.status_code == 200 and r.json()["id"] > 0
    assert rows(
        url, KEY_OTHER, "SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger'"
    ) == [{"n": 0}]
