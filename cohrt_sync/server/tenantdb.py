"""One tenant's SQLite database: realtime_messages, history, idempotency, usage and direct SQL.

It runs on the tenant's own worker thread (:class:`SqliteWorker`), which
serialises all access. The server's own statements use one connection; a
tenant's direct SQL uses another (:mod:`.directsql`), so nothing a tenant does
on its connection (temp objects, cached statements) reaches the server's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from . import directsql
from ._json import dumps
from ._sqlite import SqliteWorker
from .directsql import DatabaseFull, SqlLimits
from .sqlpolicy import IDEMPOTENCY_TABLE, PROTECTED_TABLES, USAGE_TABLE, SqlPolicy

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS main.realtime_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS main.realtime_messages_channel_id ON realtime_messages (channel, id);
CREATE TABLE IF NOT EXISTS main.{IDEMPOTENCY_TABLE} (
    key TEXT PRIMARY KEY,
    id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS main.{IDEMPOTENCY_TABLE}_created ON {IDEMPOTENCY_TABLE} (created_at_ms);
CREATE TABLE IF NOT EXISTS main.{USAGE_TABLE} (
    bucket TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
"""

#: channel, event, data (JSON text), created_at_ms, Idempotency-Key or None
Row = Tuple[str, str, str, int, Optional[str]]

#: Usage buckets (see :mod:`.limits`) and how much to add to each.
Counts = Sequence[Tuple[str, int]]

#: How long an Idempotency-Key is remembered, and how many per tenant (the
#: oldest go first); the in-memory map and the table keep the same bounds.
IDEMPOTENCY_TTL_S = 24 * 3600
IDEMPOTENCY_MAX = 10_000

_INSERT = (
    "INSERT INTO main.realtime_messages (channel, event, data, created_at_ms) VALUES (?, ?, ?, ?)"
)
_INSERT_KEY = (
    f"INSERT OR REPLACE INTO main.{IDEMPOTENCY_TABLE} (key, id, channel, event, created_at_ms)"
    " VALUES (?, ?, ?, ?, ?)"
)
_PRUNE_KEYS = (
    f"DELETE FROM main.{IDEMPOTENCY_TABLE} WHERE created_at_ms < ?"
    f" OR rowid <= (SELECT max(rowid) FROM main.{IDEMPOTENCY_TABLE}) - {IDEMPOTENCY_MAX}"
)
_COUNT = (
    f"INSERT INTO main.{USAGE_TABLE} (bucket, n) VALUES (?, ?)"
    " ON CONFLICT (bucket) DO UPDATE SET n = n + excluded.n"
)
_TRIGGERS = (
    "SELECT name FROM main.sqlite_master WHERE type = 'trigger' AND lower(tbl_name) IN ({})".format(
        ", ".join(f"'{t}'" for t in sorted(PROTECTED_TABLES | {IDEMPOTENCY_TABLE, USAGE_TABLE}))
    )
)


class PersistRefused(Exception):
    """A persisted publish can't be written as asked; the message says why."""


class TenantDB(SqliteWorker):
    """The SQLite file of one tenant, driven from one named worker thread.

    :param path: the database file.
    :param thread_name: the worker thread's name.
    :param limits: the quota and the direct-SQL limits.
    :param max_row: bytes of the largest row the server itself writes.
    """

    def __init__(
        self,
        path: Path,
        thread_name: str,
        limits: SqlLimits,
        max_row: int = 1 << 20,
    ) -> None:
        # FULL: an acknowledged message survives power loss, not only a crash;
        # batched commits are what keep that affordable.
        super().__init__(path, thread_name, synchronous="FULL")
        self.limits = limits
        self._max_row = max(max_row, self.limits.max_value)
        self._pages = 0
        self._policy = SqlPolicy()
        self._sql_conn: Optional[sqlite3.Connection] = None
        #: schema_version at the last check that no trigger sits on the tables
        #: the server writes.
        self._checked_schema: Optional[int] = None
        #: Runs inside every write transaction on this file, after its lock is
        #: taken, and raises to refuse it: a cluster's fence (see docs/cluster.md).
        self.write_guard: Optional[Callable[[sqlite3.Connection], None]] = None
        #: The file's inode once opened (see :meth:`same_file`).
        self._inode: Optional[int] = None

    def same_file(self) -> bool:
        """Whether :attr:`path` is still the file this opened (not deleted or replaced)."""
        try:
            return self._inode is None or os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def _setup(self, conn: sqlite3.Connection) -> None:
        self._inode = os.stat(self.path).st_ino
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        self._pages = max(1, self.limits.max_db_size // page_size)
        directsql.tune(conn, self._pages, self._max_row)

    def _sql(self) -> sqlite3.Connection:
        """The direct-SQL connection, opened on first use (worker thread only)."""
        if self._sql_conn is None:
            self._db()  # creates the file in WAL mode and learns its page size
            self._sql_conn = directsql.open_sql_connection(
                self.path, self.limits, self._policy, self._pages
            )
        return self._sql_conn

    def _close_connections(self) -> None:
        if self._sql_conn is not None:
            self._sql_conn.close()
            self._sql_conn = None
        super()._close_connections()

    # -- schema ---------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create ``realtime_messages``, its index and the idempotency table if missing."""
        self._db().executescript(SCHEMA)

    def drop_realtime(self) -> None:
        """Drop ``realtime_messages`` and its idempotency records (realtime was deleted).

        The usage counts stay: a tier's caps outlive a deprovision.
        """
        db = self._db()
        db.execute("DROP INDEX IF EXISTS main.realtime_messages_channel_id")
        db.execute("DROP TABLE IF EXISTS main.realtime_messages")
        db.execute(f"DROP TABLE IF EXISTS main.{IDEMPOTENCY_TABLE}")

    # -- writes ---------------------------------------------------------------
    def insert_batch(self, rows: Sequence[Row], counts: Counts = ()) -> List[int]:
        """Insert ``rows`` (and their idempotency records) in one transaction; their ids.

        ``counts`` are added to the usage buckets in the same transaction, so a
        publish is stored if and only if it is counted. Idempotency records
        older than :data:`IDEMPOTENCY_TTL_S` before the newest row, or past the
        newest :data:`IDEMPOTENCY_MAX`, are dropped.

        :raises PersistRefused: the database is full, or a row was not written.
        :raises sqlite3.Error: any other failure (then nothing of the batch is
            committed).
        """
        ids: List[int] = []
        try:
            with self._write_transaction() as db:
                self._check_no_triggers(db)
                keyed = False
                for channel, event, data, created, key in rows:
                    cur = db.execute(_INSERT, (channel, event, data, created))
                    # "Ack means committed": a row some schema trick swallowed
                    # must not be acknowledged.
                    if cur.rowcount != 1 or not cur.lastrowid:
                        raise PersistRefused("the row was not written to realtime_messages")
                    ids.append(int(cur.lastrowid))
                    if key is not None:
                        db.execute(
                            _INSERT_KEY, (_key_bytes(key), cur.lastrowid, channel, event, created)
                        )
                        keyed = True
                if keyed:
                    newest = max(row[3] for row in rows)
                    db.execute(_PRUNE_KEYS, (newest - IDEMPOTENCY_TTL_S * 1000,))
                db.executemany(_COUNT, counts)
        except sqlite3.Error as e:
            if directsql.is_full(e):
                raise PersistRefused(directsql.quota_message(self.limits)) from e
            raise
        return ids

    def guarded_write(self) -> None:
        """An empty write transaction that runs :attr:`write_guard` (a new owner's claim)."""
        with self._write_transaction():
            pass

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` and :attr:`write_guard`, then ``COMMIT``; a failure rolls back."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if self.write_guard is not None:
                self.write_guard(db)
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _check_no_triggers(self, db: sqlite3.Connection) -> None:
        # Direct SQL can't create such a trigger, but one can arrive with a
        # table renamed into place, or with a file from an older server; the
        # schema cookie makes the check free until the schema changes.
        version = int(db.execute("PRAGMA main.schema_version").fetchone()[0])
        if version == self._checked_schema:
            return
        names = [r[0] for r in db.execute(_TRIGGERS)]
        if names:
            raise PersistRefused(
                f"realtime_messages has trigger(s) {', '.join(names)}, which could change or"
                " drop an acknowledged message; drop them with direct SQL"
            )
        self._checked_schema = version

    # -- reads ----------------------------------------------------------------
    def usage_counts(self) -> Dict[str, int]:
        """Every usage bucket and its count."""
        return {b: int(n) for b, n in self._db().execute(f"SELECT bucket, n FROM {USAGE_TABLE}")}

    def messages_after(self, after: int, limit: int) -> List[Tuple[int, str, str, str, int]]:
        """Rows of every channel with ``id > after``, ascending: (id, channel, event, data, ms)."""
        cur = self._db().execute(
            "SELECT id, channel, event, data, created_at_ms FROM main.realtime_messages"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in cur]

    def newest_id(self) -> int:
        """The highest message id stored (0 for none)."""
        row = self._db().execute("SELECT max(id) FROM main.realtime_messages").fetchone()
        return int(row[0] or 0)

    def find_idempotent(self, key: str, not_before_ms: int) -> Optional[Dict[str, Any]]:
        """The ack of a persisted publish made with ``key`` since ``not_before_ms``, if any."""
        cur = self._db().execute(
            f"SELECT id, channel, event, created_at_ms FROM main.{IDEMPOTENCY_TABLE}"
            " WHERE key = ? AND created_at_ms >= ?",
            (_key_bytes(key), not_before_ms),
        )
        row = cur.fetchone()
        if row is None:
            return None
        id_, channel, event, created = row
        return {
            "channel": channel,
            "action": event,
            "event": event,
            "created_at_ms": created,
            "id": id_,
        }

    def history(self, channel: str, after: int, limit: int) -> List[Dict[str, Any]]:
        """Persisted messages of ``channel`` with ``id > after``, ascending."""
        cur = self._db().execute(
            "SELECT id, channel, event, data, created_at_ms FROM main.realtime_messages"
            " WHERE channel = ? AND id > ? ORDER BY id LIMIT ?",
            (channel, after, limit),
        )
        out = []
        for id_, ch, event, data, created in cur:
            try:
                decoded = json.loads(data)
                # What publish wrote always passes; direct SQL can write text that
                # parses but can't be sent (NaN, 1e999, lone surrogates, deep nesting).
                dumps(decoded).encode("utf-8")
            except (TypeError, ValueError, RecursionError):
                # Not JSON: hand it back as text (BLOBs as byte values, as direct SQL does).
                decoded = directsql.jsonable(data)
            event = directsql.jsonable(event)
            out.append(
                {
                    "id": id_,
                    "channel": directsql.jsonable(ch),
                    "event": event,
                    "action": event,
                    "data": decoded,
                    "created_at_ms": directsql.jsonable(created),
                }
            )
        return out

    # -- direct SQL -----------------------------------------------------------
    def execute_sql(self, query: str, params: Sequence[Any]) -> bytes:
        """Run one statement of direct SQL; its D1-shaped answer as JSON bytes.

        See :func:`.directsql.run_statement` for what it raises. With a
        :attr:`write_guard`, the statement runs in a transaction the guard
        opened, so a write it allows can't land after it would refuse.
        """
        conn = self._sql()
        if self.write_guard is None:
            return directsql.run_statement(conn, self._policy, self.limits, query, params)
        with directsql.guarded(conn, self._policy, self.write_guard):
            return directsql.run_statement(conn, self._policy, self.limits, query, params)


__all__ = ["Counts", "DatabaseFull", "PersistRefused", "Row", "SqlLimits", "TenantDB"]


def _key_bytes(key: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 as lone surrogates,
    # which sqlite3 can't bind as text: keep the key as the bytes that came.
    return key.encode("utf-8", "surrogateescape")
