"""Direct SQL that allocates, computes or stores without bound.

Every limit answers a clear error that names it, a refused statement changes
nothing, and one tenant's expensive query neither stalls the others nor
balloons the server's memory.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, List

import pytest
import requests

from cohrt_sync import Client
from cohrt_sync.errors import BadRequestError
from cohrt_sync.server import LocalServer
from cohrt_sync.server.directsql import HAS_SETLIMIT, JOURNAL_SIZE_LIMIT

from . import _sql
from ._proc import ServerProcess
from ._sql import TIMEOUT, rows, sql

KEY = "klim_1a2b3c4d5e6f7a8b"
KEY_B = "klim_b_9f8e7d6c5b4a"
RECURSE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"


def _start(**limits: Any) -> LocalServer:
    return LocalServer([KEY, KEY_B], provision=True, **limits).start()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """Small row and byte limits; the time limit out of their way.

    Each test here shows one limit. On a loaded machine a 1 s time limit
    could fire first and answer for the limit under test.
    """
    srv = _start(sql_time_limit=60.0, sql_max_rows=100, sql_max_result_bytes=100_000)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def timed_server() -> Iterator[LocalServer]:
    """A 1 s time limit, and the other answer limits out of its way."""
    srv = _start(sql_time_limit=1.0)
    try:
        yield srv
    finally:
        srv.close()


def error(r: requests.Response, code: int, status: str, *fragments: str) -> str:
    assert r.status_code == code, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["code"] == code and err["status"] == status, err
    for fragment in fragments:
        assert fragment in err["message"], err
    return str(err["message"])


def publish(base_url: str, key: str, data: Any, persist: bool = True) -> requests.Response:
    """A publish on a channel of its own."""
    return _sql.publish(base_url, key, "lim:" + uuid.uuid4().hex[:8], data, persist=persist)


# -- one value -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "SELECT zeroblob(64000000)",
        "SELECT randomblob(3000000)",
        "SELECT hex(zeroblob(1500000))",
        "SELECT replace(hex(zeroblob(900000)), '0', 'xyz')",
    ],
)
def test_a_value_over_the_limit_is_413(server: LocalServer, query: str) -> None:
    started = time.monotonic()
    error(sql(server.base_url, KEY, query), 413, "INVALID_ARGUMENT", "2000000", "--sql-max-value")
    assert time.monotonic() - started < 3


def test_printf_width_is_bounded(server: LocalServer) -> None:
    # SQLite's printf() answers NULL, not an error, when its text would pass the limit.
    r = sql(server.base_url, KEY, "SELECT printf('%.*c', 300000000, 'x') AS s")
    if r.status_code == 200:
        assert r.json()["results"] == [{"s": None}], r.text[:200]
    else:
        error(r, 413, "INVALID_ARGUMENT", "--sql-max-value")


def test_a_value_under_the_limit_is_fine(server: LocalServer) -> None:
    assert rows(server.base_url, KEY, "SELECT length(zeroblob(1999000)) AS n") == [{"n": 1999000}]


@pytest.mark.skipif(not HAS_SETLIMIT, reason="SQLITE_LIMIT_LENGTH needs Python 3.11+")
def test_writing_a_value_over_the_limit_is_refused_and_writes_nothing(server: LocalServer) -> None:
    url = server.base_url
    table = "big_" + uuid.uuid4().hex[:8]
    assert sql(url, KEY, f"CREATE TABLE {table} (b)").status_code == 200
    r = sql(url, KEY, f"INSERT INTO {table} VALUES (zeroblob(25000000))")
    error(r, 413, "INVALID_ARGUMENT", "--sql-max-value")
    assert rows(url, KEY, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]


@pytest.mark.skipif(not HAS_SETLIMIT, reason="SQLITE_LIMIT_LENGTH needs Python 3.11+")
def test_the_servers_own_insert_is_bounded_too(tmp_path: Path) -> None:
    """A tenant-made column DEFAULT is evaluated by the server's own insert."""
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        url = srv.base_url
        for statement in [
            "DROP TABLE realtime_messages",
            "CREATE TABLE realtime_messages (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " channel TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,"
            " created_at_ms INTEGER NOT NULL, pad BLOB DEFAULT (randomblob(300000000)))",
        ]:
            assert sql(url, KEY, statement).status_code == 200, statement
        r = publish(url, KEY, {"n": 1})
        assert r.status_code == 500, r.text
        assert r.json()["error"]["message"].startswith("Failed to persist message: "), r.text


# -- time -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        f"{RECURSE} SELECT count(*) FROM c",
        f"{RECURSE} SELECT group_concat(x) FROM c",
        f"{RECURSE} SELECT max(length(hex(randomblob(1000)))) FROM c",
    ],
)
def test_a_runaway_query_is_stopped_at_the_time_limit(
    timed_server: LocalServer, query: str
) -> None:
    started = time.monotonic()
    error(sql(timed_server.base_url, KEY, query), 400, "INVALID_ARGUMENT", "1 s time limit")
    # Stopped, not run to its end (which would take hours): a bound a loaded
    # machine keeps.
    assert time.monotonic() - started < 15


# -- the answer --------------------------------------------------------------------------------
def test_too_many_rows_is_413_and_names_the_limit(server: LocalServer) -> None:
    url = server.base_url
    msg = error(sql(url, KEY, f"{RECURSE} SELECT x FROM c"), 413, "INVALID_ARGUMENT")
    assert "100 rows" in msg and "--sql-max-rows" in msg and "LIMIT" in msg, msg
    assert len(rows(url, KEY, f"{RECURSE} SELECT x FROM c LIMIT 100")) == 100


def test_too_many_bytes_is_413_and_names_the_limit(server: LocalServer) -> None:
    url = server.base_url
    r = sql(url, KEY, f"{RECURSE} SELECT randomblob(1000) AS b FROM c LIMIT 50")
    msg = error(r, 413, "INVALID_ARGUMENT", "100000 bytes", "--sql-max-result-bytes")
    assert "fewer columns" in msg and "LIMIT" in msg, msg
    assert len(rows(url, KEY, f"{RECURSE} SELECT randomblob(100) AS b FROM c LIMIT 50")) == 50


def test_a_refused_answer_rolls_back_its_write(server: LocalServer) -> None:
    url = server.base_url
    table = "ret_" + uuid.uuid4().hex[:8]
    assert sql(url, KEY, f"CREATE TABLE {table} (x)").status_code == 200
    r = sql(url, KEY, f"INSERT INTO {table} {RECURSE} SELECT x FROM c LIMIT 500 RETURNING x")
    error(r, 413, "INVALID_ARGUMENT", "--sql-max-rows")
    assert rows(url, KEY, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]
    # Past the limit on the last row, the write has finished: the error says so.
    r = sql(url, KEY, f"INSERT INTO {table} {RECURSE} SELECT x FROM c LIMIT 101 RETURNING x")
    error(r, 413, "INVALID_ARGUMENT", "--sql-max-rows", "its changes were kept")
    assert rows(url, KEY, f"SELECT count(*) AS n FROM {table}") == [{"n": 101}]


def test_sql_text_and_params_are_bounded(server: LocalServer) -> None:
    url = server.base_url
    long_query = "SELECT 1 AS one /*" + "x" * 100_000 + "*/"
    error(sql(url, KEY, long_query), 413, "INVALID_ARGUMENT", "100000-byte", "--sql-max-length")
    many = ", ".join("?" for _ in range(101))
    r = sql(url, KEY, f"SELECT {many}", list(range(101)))
    error(r, 400, "INVALID_ARGUMENT", "101 params", "--sql-max-params")
    assert rows(url, KEY, "SELECT " + ", ".join("?" for _ in range(100)), list(range(100)))


# -- the storage quota -----------------------------------------------------------------------------
def test_the_quota_stops_direct_sql_and_publishes_with_clear_errors(tmp_path: Path) -> None:
    quota = 2_000_000
    with LocalServer([KEY], provision=True, data_dir=tmp_path, max_db_size=quota) as srv:
        url = srv.base_url
        assert sql(url, KEY, "CREATE TABLE fill (b BLOB)").status_code == 200
        # The attack: 40 x 25 MB in one statement (here as many as fit).
        r = sql(url, KEY, f"INSERT INTO fill {RECURSE} SELECT zeroblob(1000000) FROM c LIMIT 40")
        msg = error(r, 413, "RESOURCE_EXHAUSTED", "full", str(quota), "--max-db-size")
        assert rows(url, KEY, "SELECT count(*) AS n FROM fill") == [{"n": 0}], "not rolled back"
        # The client library's exception for it is a plain request error.
        with Client(key=KEY, base_url=url) as client:
            with pytest.raises(BadRequestError) as caught:
                client.sql(f"INSERT INTO fill {RECURSE} SELECT zeroblob(1000000) FROM c LIMIT 40")
        assert "full" in str(caught.value), caught.value
        # Fill it row by row until not even a small row fits, then publish.
        for size in (300_000, 30_000, 3_000):
            for _ in range(100):
                r = sql(url, KEY, "INSERT INTO fill VALUES (zeroblob(?))", [size])
                if r.status_code != 200:
                    break
            error(r, 413, "RESOURCE_EXHAUSTED", "full")
        r = publish(url, KEY, {"text": "x" * 60_000})
        assert r.status_code == 500, r.text
        message = r.json()["error"]["message"]
        assert message.startswith("Failed to persist message: the tenant database is full"), message
        assert f"quota {quota} bytes" in message, message
        # Ephemeral traffic still flows, and deleting makes room again.
        assert publish(url, KEY, {"typing": True}, persist=False).status_code == 200
        assert sql(url, KEY, "DELETE FROM fill").status_code == 200
        assert publish(url, KEY, {"text": "x" * 60_000}).status_code == 200
        (path,) = (tmp_path / "tenants").glob("*.sqlite3")
        assert path.stat().st_size <= quota, (path.stat().st_size, msg)


def test_the_wal_is_truncated_after_a_checkpoint(tmp_path: Path) -> None:
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        url = srv.base_url
        assert sql(url, KEY, "CREATE TABLE fill (b BLOB)").status_code == 200
        big = f"INSERT INTO fill {RECURSE} SELECT zeroblob(1000000) FROM c LIMIT 12"
        assert sql(url, KEY, big).status_code == 200
        (wal,) = (tmp_path / "tenants").glob("*.sqlite3-wal")
        assert wal.stat().st_size > JOURNAL_SIZE_LIMIT
        # The next commits after SQLite's automatic checkpoint restart the WAL.
        for n in range(3):
            assert sql(url, KEY, "INSERT INTO fill VALUES (?)", [n]).status_code == 200
        assert wal.stat().st_size <= JOURNAL_SIZE_LIMIT, wal.stat().st_size


def test_nonsense_limits_are_refused_up_front() -> None:
    with pytest.raises(ValueError):
        LocalServer([KEY], max_db_size=0)
    with pytest.raises(ValueError):
        LocalServer([KEY], sql_time_limit=-1.0)


# -- one tenant can't stall the others or balloon the server -----------------------------------
def test_an_expensive_tenant_does_not_stall_others_or_grow_memory() -> None:
    args = ["--key", KEY, "--key", KEY_B, "--provision", "--sql-time-limit", "2"]
    with ServerProcess(args) as proc:
        url = proc.base_url
        rows(url, KEY_B, "SELECT 1 AS warm")
        rss_before = proc.rss_bytes()
        attacks = [
            "SELECT zeroblob(64000000)",
            f"{RECURSE} SELECT count(*) FROM c",
            f"{RECURSE} SELECT randomblob(100000) AS b FROM c",
            f"{RECURSE} SELECT x FROM c",
            "SELECT zeroblob(64000000)",
        ]
        answers: List[int] = []
        done = threading.Event()

        def attack() -> None:
            try:
                for query in attacks:
                    answers.append(sql(url, KEY, query).status_code)
            finally:
                done.set()

        attacker = threading.Thread(target=attack)
        attacker.start()
        latencies: List[float] = []
        peak_rss = rss_before
        while not done.is_set() or not latencies:
            started = time.perf_counter()
            assert rows(url, KEY_B, "SELECT 1 AS ok") == [{"ok": 1}]
            latencies.append(time.perf_counter() - started)
            peak_rss = max(peak_rss, proc.rss_bytes())
            time.sleep(0.02)
        attacker.join(TIMEOUT)
        latencies.sort()
        worst = latencies[-1]
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        growth = peak_rss - rss_before
        print(
            f"\nother tenant: {len(latencies)} queries during the attack, median"
            f" {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
            f" max {worst * 1000:.1f} ms; server RSS grew {growth / 2**20:.0f} MiB",
            file=sys.stderr,
        )
        assert worst < 1.5, f"the other tenant waited {worst:.2f} s"
        # Without setlimit (Python < 3.11) a 64 MB value is built before it is refused.
        allowed = (100 if HAS_SETLIMIT else 300) * 2**20
        assert growth < allowed, f"RSS grew {growth / 2**20:.0f} MiB"
        assert proc.alive()
        assert answers == [413, 400, 413, 413, 413], answers
