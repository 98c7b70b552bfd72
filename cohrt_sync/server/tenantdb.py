"""One tenant's SQLite database: realtime_messages, history and direct SQL.

It runs on the tenant's own worker thread (:class:`SqliteWorker`): one
connection serialises all access, which is what makes reads strongly
consistent and batching simple.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._json import dumps
from ._sqlite import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS realtime_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS realtime_messages_channel_id ON realtime_messages (channel, id);
"""

#: Read-only pragmas direct SQL may use; the rest could change journal mode,
#: point the database at other files or otherwise break the server's contract.
SAFE_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "user_version",
        "data_version",
        "page_count",
        "page_size",
        "freelist_count",
        "compile_options",
        "function_list",
        "pragma_list",
    }
)

#: Direct SQL is interrupted after this long so a runaway query can't hold the
#: tenant's only database thread.
SQL_TIME_LIMIT_S = 5.0

Row = Tuple[str, str, str, int]  # channel, event, data (JSON text), created_at_ms


class SqlRefused(Exception):
    """Direct SQL tried something outside the tenant's own database."""


class TenantDB(SqliteWorker):
    """The SQLite file of one tenant, driven from one named worker thread.

    :param path: the database file.
    :param thread_name: the worker thread's name.
    """

    def __init__(self, path: Path, thread_name: str) -> None:
        # FULL: an acknowledged message survives power loss, not only a crash;
        # batched commits are what keep that affordable.
        super().__init__(path, thread_name, synchronous="FULL")
        self._refusal: Optional[str] = None
        #: True while direct SQL runs: only then does the authorizer refuse.
        self._confined = False

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.set_authorizer(self._authorize)

    # -- schema ---------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create ``realtime_messages`` and its index if missing."""
        self._db().executescript(SCHEMA)

    def drop_realtime(self) -> None:
        """Drop ``realtime_messages`` (the realtime resource was deleted)."""
        db = self._db()
        db.execute("DROP INDEX IF EXISTS realtime_messages_channel_id")
        db.execute("DROP TABLE IF EXISTS realtime_messages")

    # -- writes ---------------------------------------------------------------
    def insert_batch(self, rows: Sequence[Row]) -> List[int]:
        """Insert ``rows`` in one transaction; their ids, in order.

        Raises the sqlite3 error if the transaction fails (then nothing of the
        batch is committed).
        """
        db = self._db()
        ids: List[int] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cur = db.execute(
                    "INSERT INTO realtime_messages (channel, event, data, created_at_ms)"
                    " VALUES (?, ?, ?, ?)",
                    row,
                )
                ids.append(int(cur.lastrowid or 0))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return ids

    # -- reads ----------------------------------------------------------------
    def history(self, channel: str, after: int, limit: int) -> List[Dict[str, Any]]:
        """Persisted messages of ``channel`` with ``id > after``, ascending."""
        cur = self._db().execute(
            "SELECT id, channel, event, data, created_at_ms FROM realtime_messages"
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
                decoded = _jsonable(data)
            event = _jsonable(event)
            out.append(
                {
                    "id": id_,
                    "channel": _jsonable(ch),
                    "event": event,
                    "action": event,
                    "data": decoded,
                    "created_at_ms": _jsonable(created),
                }
            )
        return out

    # -- direct SQL -----------------------------------------------------------
    def execute_sql(self, query: str, params: Sequence[Any]) -> Dict[str, Any]:
        """Run one statement of direct SQL, confined to this database.

        :raises SqlRefused: for ATTACH, extension loading, unsafe pragmas.
        :raises sqlite3.Error: for any SQL error.
        """
        db = self._db()
        self._refusal = None
        deadline = time.monotonic() + SQL_TIME_LIMIT_S
        started = time.perf_counter()
        self._confined = True
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cur = db.execute(query, list(params))
            columns = [d[0] for d in cur.description or ()]
            results = [dict(zip(columns, (_jsonable(v) for v in row))) for row in cur]
            meta = {
                "changes": cur.rowcount if cur.rowcount >= 0 else 0,
                "last_row_id": cur.lastrowid or 0,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "rows_read": len(results),
            }
        except sqlite3.Error as e:
            if self._refusal is not None:
                raise SqlRefused(self._refusal) from e
            if time.monotonic() > deadline:
                raise SqlRefused(f"query exceeded the {SQL_TIME_LIMIT_S:g} s time limit") from e
            raise
        finally:
            self._confined = False
            db.set_progress_handler(None, 0)
            if db.in_transaction:
                # A statement like BEGIN would otherwise leave the server's own
                # batches inside the user's transaction.
                db.execute("ROLLBACK")
        return {"results": results, "success": True, "meta": meta}

    def _authorize(
        self,
        action: int,
        arg1: Optional[str],
        arg2: Optional[str],
        dbname: Optional[str],
        source: Optional[str],
    ) -> int:
        # Installed once and switched by a flag: before Python 3.11,
        # set_authorizer(None) does not remove an authorizer, it denies all.
        if not self._confined:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            self._refusal = "ATTACH and DETACH are not allowed"
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() == "load_extension":
            self._refusal = "loading extensions is not allowed"
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in SAFE_PRAGMAS:
            self._refusal = f"PRAGMA {arg1} is not allowed"
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_TRANSACTION:
            self._refusal = "transaction control is not allowed; each query runs on its own"
            return sqlite3.SQLITE_DENY
        if dbname not in (None, "main", "temp") and action != sqlite3.SQLITE_FUNCTION:
            self._refusal = f"database {dbname!r} is outside this tenant"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


def _jsonable(value: Any) -> Any:
    # D1 returns BLOBs as arrays of byte values.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    # JSON has no Infinity or NaN; JavaScript's JSON.stringify (and so D1) says null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
