"""Direct SQL (``POST /edge/database``): its limits, its connection, its answer.

A tenant's statements run on a connection of their own to the tenant's file
(see :mod:`.sqlpolicy` for why), on the tenant's worker thread. The answer's
JSON is built there too, row by row against the limits, so the event loop only
ever sends finished bytes, and the time limit covers building the answer as
well as running the query.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Sequence

import attrs

from ._json import dumps
from .sqlpolicy import SqlPolicy, SqlRefused

#: SQLite's primary result codes (``sqlite3.Error.sqlite_errorcode``, Python 3.11+).
_SQLITE_FULL = 13
_SQLITE_TOOBIG = 18

#: The progress handler runs every this many virtual-machine steps.
_PROGRESS_STEPS = 10_000

#: Each checkpoint that empties the WAL truncates it to this size, so one
#: large transaction doesn't leave a WAL file as large as the database.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

_positive = attrs.validators.gt(0)


@attrs.frozen
class SqlLimits:
    """The bounds on one tenant's database and on each direct-SQL statement.

    Made by :meth:`cohrt_sync.server.config.Config.sql_limits`, whose
    defaults follow Cloudflare D1 where it has a limit (value, SQL text,
    parameters, the free tier's database size); the result bounds are the
    local server's own (D1 answers up to 50 MB).

    :param max_db_size: bytes the tenant's database file may hold
        (``max_page_count``); past it writes fail.
    :param time_limit: seconds a statement may run, answer included.
    :param max_value: bytes of the largest string, BLOB or row
        (``SQLITE_LIMIT_LENGTH``; Python 3.11+, see :data:`HAS_SETLIMIT`).
    :param max_sql_length: bytes of SQL text in one statement.
    :param max_params: bound parameters in one statement.
    :param max_rows: rows in one answer.
    :param max_result_bytes: bytes of JSON in one answer's rows.
    """

    max_db_size: int = attrs.field(validator=_positive)
    time_limit: float = attrs.field(validator=attrs.validators.gt(0.0))
    max_value: int = attrs.field(validator=_positive)
    max_sql_length: int = attrs.field(validator=_positive)
    max_params: int = attrs.field(validator=_positive)
    max_rows: int = attrs.field(validator=_positive)
    max_result_bytes: int = attrs.field(validator=_positive)


#: ``Connection.setlimit`` came with Python 3.11. Before it, a single value is
#: bounded only by SQLite's compile-time maximum (1,000,000,000 bytes on
#: Debian) while it is built; the answer is still refused once a value over
#: ``max_value`` reaches Python, and the quota still bounds what is stored.
HAS_SETLIMIT = hasattr(sqlite3.Connection, "setlimit")


class SqlTooLarge(Exception):
    """An answer, value or statement went past a size limit (HTTP 413)."""


class SqlOutOfTime(Exception):
    """The statement ran past the time limit (its answer included) and was stopped (HTTP 400)."""


class DatabaseFull(Exception):
    """A write needed more room than the tenant's quota allows (HTTP 413)."""


def quota_message(limits: SqlLimits) -> str:
    """What to say when the tenant's database is full."""
    return (
        f"the tenant database is full (quota {limits.max_db_size} bytes, --max-db-size);"
        " delete rows or drop tables to make room"
    )


def is_full(error: sqlite3.Error) -> bool:
    """True if ``error`` is SQLite's SQLITE_FULL (the quota, or the disk)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code == _SQLITE_FULL or (code is None and "database or disk is full" in str(error))


def _is_too_big(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code == _SQLITE_TOOBIG or (code is None and "string or blob too big" in str(error))


def tune(conn: sqlite3.Connection, pages: int, max_value: int) -> None:
    """Settings every connection to a tenant file gets: quota, WAL size, value size.

    :param pages: the quota in pages (``max_page_count``).
    :param max_value: bytes of the largest string, BLOB or row.

    Pragmas run through ``executescript``, which bypasses Python's statement
    cache, so no statement the server ran unauthorized stays cached on a
    connection that later runs a tenant's SQL.
    """
    conn.executescript(
        f"PRAGMA max_page_count={pages}; PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT};"
    )
    _setlimit(conn, "SQLITE_LIMIT_LENGTH", max_value)
    # Python 3.12+: the FTS3 tokenizer registry is switched off at the source,
    # and "defensive" refuses writes that could corrupt the file (shadow
    # tables, schema); on older Pythons the authorizer is what holds.
    setconfig = getattr(conn, "setconfig", None)
    if setconfig is not None:
        for name, on in (
            ("SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER", False),
            ("SQLITE_DBCONFIG_DEFENSIVE", True),
        ):
            op = getattr(sqlite3, name, None)
            if op is not None:
                setconfig(op, on)


def _setlimit(conn: sqlite3.Connection, name: str, value: int) -> None:
    setlimit = getattr(conn, "setlimit", None)
    if setlimit is not None:
        setlimit(getattr(sqlite3, name), value)


def open_sql_connection(
    path: Path, limits: SqlLimits, policy: SqlPolicy, pages: int
) -> sqlite3.Connection:
    """A connection for direct SQL: tuned, limited, and under ``policy`` for good.

    :param pages: the quota in pages (``max_page_count``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    # The file may be new (a database provisioned before realtime).
    conn.executescript(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;"
    )
    tune(conn, pages, limits.max_value)
    _setlimit(conn, "SQLITE_LIMIT_SQL_LENGTH", limits.max_sql_length)
    _setlimit(conn, "SQLITE_LIMIT_VARIABLE_NUMBER", limits.max_params)
    conn.set_authorizer(policy.authorize)
    return conn


@contextlib.contextmanager
def guarded(
    conn: sqlite3.Connection, policy: SqlPolicy, guard: Callable[[sqlite3.Connection], None]
) -> Iterator[None]:
    """Run the block's statement in a write transaction that ``guard`` checked first.

    The policy refuses transaction control and the server's own tables to
    the tenant, not to the server: it is lifted only around the server's
    statements here, never while the tenant's runs.
    """
    conn.set_authorizer(_allow_all)  # None lifts it only from Python 3.11
    conn.execute("BEGIN IMMEDIATE")
    try:
        guard(conn)
        conn.set_authorizer(policy.authorize)
        yield
        conn.set_authorizer(_allow_all)
        if conn.in_transaction:
            conn.execute("COMMIT")
    finally:
        conn.set_authorizer(_allow_all)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.set_authorizer(policy.authorize)


def _allow_all(*_: Any) -> int:
    return sqlite3.SQLITE_OK


def check_statement(query: str, params: Sequence[Any], limits: SqlLimits) -> None:
    """Refuse SQL text or parameters over the limits before they reach SQLite.

    :raises SqlTooLarge: the text is too long.
    :raises ValueError: too many parameters.
    """
    size = len(query.encode("utf-8", "surrogatepass"))
    if size > limits.max_sql_length:
        raise SqlTooLarge(
            f"query is {size} bytes, over the {limits.max_sql_length}-byte limit on SQL text"
            " (--sql-max-length); bind values as params or split the statement"
        )
    if len(params) > limits.max_params:
        raise ValueError(
            f"{len(params)} params, over the limit of {limits.max_params} bound parameters"
            " (--sql-max-params); split the statement"
        )


def run_statement(
    conn: sqlite3.Connection,
    policy: SqlPolicy,
    limits: SqlLimits,
    query: str,
    params: Sequence[Any],
) -> bytes:
    """Run one statement and return its D1-shaped answer as JSON bytes.

    A statement refused for any limit is interrupted, so a write that was
    refused changes nothing; in the one case where it can't be (the limit
    was passed on the very last row of a ``RETURNING`` write, which then
    finishes), the error says that its changes were kept.

    :raises SqlRefused: the policy refused it.
    :raises SqlOutOfTime: it ran past the time limit.
    :raises SqlTooLarge: its answer or one of its values is over a limit.
    :raises DatabaseFull: it needed more room than the quota.
    :raises sqlite3.Error: any other SQL error.
    """
    policy.reset()
    started = time.perf_counter()
    deadline = time.monotonic() + limits.time_limit
    conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    cur = conn.cursor()
    changes_before = conn.total_changes
    try:
        try:
            cur.execute(query, list(params))
            columns = [d[0] for d in cur.description or ()]
            rows = _encode_rows(cur, columns, limits, deadline)
        except (SqlTooLarge, SqlRefused, SqlOutOfTime) as refusal:
            if not _abort(conn, cur) and conn.total_changes != changes_before:
                kept = f"{refusal} (the statement had already finished: its changes were kept)"
                raise type(refusal)(kept) from None
            raise
        meta = {
            "changes": _changes(conn, cur, changes_before),
            "last_row_id": cur.lastrowid or 0,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "rows_read": len(rows),
        }
    except sqlite3.Error as e:
        if policy.refusal is not None:
            raise SqlRefused(policy.refusal) from e
        if time.monotonic() > deadline:
            raise _out_of_time(limits) from e
        if is_full(e):
            raise DatabaseFull(quota_message(limits)) from e
        if _is_too_big(e):
            raise _value_too_big(limits) from e
        raise
    finally:
        cur.close()
        conn.set_progress_handler(None, 0)
    return b"".join(
        (b'{"results":[', b",".join(rows), b'],"success":true,"meta":', dumps(meta).encode(), b"}")
    )


def _changes(conn: sqlite3.Connection, cur: sqlite3.Cursor, total_before: int) -> int:
    """Rows the statement inserted, updated or deleted: D1's ``meta.changes``.

    Python's ``rowcount`` is -1 for a write that starts with ``WITH``; SQLite's
    own ``changes()`` counts it, and, as D1 does, leaves out rows that
    triggers changed. It is asked only when the statement changed something,
    because after a read it still names the last write.
    """
    if conn.total_changes == total_before:
        return 0
    if cur.rowcount >= 0:
        return int(cur.rowcount)
    return int(conn.execute("SELECT changes()").fetchone()[0])


def _encode_rows(
    cur: sqlite3.Cursor, columns: List[str], limits: SqlLimits, deadline: float
) -> List[bytes]:
    rows: List[bytes] = []
    size = 0
    check_values = not HAS_SETLIMIT
    for row in cur:
        if len(rows) >= limits.max_rows:
            raise SqlTooLarge(
                f"query result has more than {limits.max_rows} rows (--sql-max-rows);"
                " add LIMIT or a narrower WHERE clause, and page with LIMIT/OFFSET"
            )
        if check_values:
            _check_values(row, limits)
        text = dumps(dict(zip(columns, map(jsonable, row)))).encode("utf-8")
        size += len(text) + 1
        if size > limits.max_result_bytes:
            raise SqlTooLarge(
                f"query result is over {limits.max_result_bytes} bytes of JSON"
                " (--sql-max-result-bytes); select fewer columns or add LIMIT and page"
                " through the rows"
            )
        if time.monotonic() > deadline:
            raise _out_of_time(limits)
        rows.append(text)
    return rows


def _check_values(row: Sequence[Any], limits: SqlLimits) -> None:
    # Without setlimit, SQLite built the value already; refuse to pass it on.
    for value in row:
        if isinstance(value, (str, bytes)) and len(value) > limits.max_value:
            if (
                isinstance(value, bytes)
                or len(value.encode("utf-8", "surrogatepass")) > limits.max_value
            ):
                raise _value_too_big(limits)


def _abort(conn: sqlite3.Connection, cur: sqlite3.Cursor) -> bool:
    """Stop the statement: True if SQLite rolled it back, False if it finished."""
    # Stepping an interrupted statement makes SQLite roll it back; a reset
    # alone would commit what a write had done so far. SQLite checks the
    # flag only on its loops' jumps, so a statement whose last row was
    # already read runs to its end instead.
    conn.interrupt()
    try:
        while cur.fetchone() is not None:
            pass
    except sqlite3.Error:
        return True
    return False


def _out_of_time(limits: SqlLimits) -> SqlOutOfTime:
    return SqlOutOfTime(
        f"query exceeded the {limits.time_limit:g} s time limit (--sql-time-limit),"
        " answer included; add an index, a WHERE clause or LIMIT"
    )


def _value_too_big(limits: SqlLimits) -> SqlTooLarge:
    return SqlTooLarge(
        f"a string, BLOB or row is over the {limits.max_value}-byte limit (--sql-max-value)"
    )


def jsonable(value: Any) -> Any:
    """A column value as D1 would put it in JSON."""
    # D1 returns BLOBs as arrays of byte values.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    # JSON has no Infinity or NaN; JavaScript's JSON.stringify (and so D1) says null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
