"""Meetings and participants in ``<data_dir>/realtimekit/realtimekit.sqlite3``.

Outside every tenant database (direct SQL cannot see them), driven from one
named worker thread (:class:`~cohrt_sync.server._sqlite.SqliteWorker`) so the
event loop never blocks on SQLite. Each object is stored as its JSON document
beside the columns that lists search and filter on.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import attrs

from .._json import dumps
from .._sqlite import SqliteWorker
from .validation import PageQuery, new_meeting

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meetings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL,
    title TEXT,
    status TEXT NOT NULL,
    ready_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meetings_app_seq ON meetings (app_id, seq);
CREATE TABLE IF NOT EXISTS participants (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    meeting_id TEXT NOT NULL,
    name TEXT,
    custom_participant_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS participants_meeting_seq ON participants (meeting_id, seq);
"""


@attrs.frozen
class StoredMeeting:
    """A meeting row: its JSON object and when it becomes visible."""

    doc: Dict[str, Any]
    ready_at: float


class RtkStore(SqliteWorker):
    """The RealtimeKit SQLite file, driven from one named worker thread.

    :param path: the database file (created on first use).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "cohrt-sync-rtk", synchronous="NORMAL")

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)

    # -- meetings (all run on the store's thread) -----------------------------------------
    def insert_meeting(self, app_id: str, doc: Dict[str, Any], ready_at: float) -> None:
        """Store a new meeting."""
        self._db().execute(
            "INSERT INTO meetings (id, app_id, title, status, ready_at, doc)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (doc["id"], app_id, doc["title"], doc["status"], ready_at, dumps(doc)),
        )

    def get_meeting(self, app_id: str, meeting_id: str) -> Optional[StoredMeeting]:
        """The meeting of ``app_id`` with that id, or None."""
        row = (
            self._db()
            .execute(
                "SELECT doc, ready_at FROM meetings WHERE app_id = ? AND id = ?",
                (app_id, meeting_id),
            )
            .fetchone()
        )
        return None if row is None else StoredMeeting(json.loads(row[0]), float(row[1]))

    def update_meeting(
        self, app_id: str, meeting_id: str, fields: Dict[str, Any], replace: bool, now: str
    ) -> Optional[Dict[str, Any]]:
        """Merge (PATCH) or replace (PUT) a meeting's fields; the result, or None if none.

        Read and write happen in one call on the store's only thread, so two
        concurrent updates cannot lose each other's fields.
        """
        stored = self.get_meeting(app_id, meeting_id)
        if stored is None:
            return None
        old = stored.doc
        if replace:
            doc = new_meeting(meeting_id, fields, old["created_at"])
            doc["updated_at"] = now
        else:
            doc = {**old, **fields}
            if fields:
                doc["updated_at"] = now
        self._db().execute(
            "UPDATE meetings SET title = ?, status = ?, doc = ? WHERE app_id = ? AND id = ?",
            (doc["title"], doc["status"], dumps(doc), app_id, meeting_id),
        )
        return doc

    def list_meetings(
        self, app_id: str, q: PageQuery, status: Optional[str]
    ) -> Tuple[int, List[Dict[str, Any]]]:
        """(total matching, this page's meetings), oldest first."""
        where = "app_id = ?"
        args: List[Any] = [app_id]
        if q.search:
            # instr() rather than LIKE: no wildcard escaping to get wrong.
            where += " AND (id = ? OR instr(lower(coalesce(title, '')), lower(?)) > 0)"
            args += [q.search, q.search]
        if status:
            where += " AND status = ?"
            args.append(status)
        db = self._db()
        total = int(db.execute(f"SELECT count(*) FROM meetings WHERE {where}", args).fetchone()[0])
        rows = db.execute(
            f"SELECT doc FROM meetings WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*args, q.per_page, q.offset],
        ).fetchall()
        return total, [json.loads(r[0]) for r in rows]

    def delete_app(self, app_id: str) -> int:
        """Remove every meeting and participant of an app; how many meetings went."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "DELETE FROM participants WHERE meeting_id IN"
                " (SELECT id FROM meetings WHERE app_id = ?)",
                (app_id,),
            )
            cur = db.execute("DELETE FROM meetings WHERE app_id = ?", (app_id,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return cur.rowcount

    # -- participants ------------------------------------------------------------------------
    def insert_participant(self, meeting_id: str, doc: Dict[str, Any]) -> None:
        """Store a new participant."""
        self._db().execute(
            "INSERT INTO participants (id, meeting_id, name, custom_participant_id, doc)"
            " VALUES (?, ?, ?, ?, ?)",
            (doc["id"], meeting_id, doc["name"], doc["custom_participant_id"], dumps(doc)),
        )

    def get_participant(self, meeting_id: str, participant_id: str) -> Optional[Dict[str, Any]]:
        """The participant of that meeting, or None."""
        row = (
            self._db()
            .execute(
                "SELECT doc FROM participants WHERE meeting_id = ? AND id = ?",
                (meeting_id, participant_id),
            )
            .fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    def update_participant(
        self, meeting_id: str, participant_id: str, fields: Dict[str, Any], now: str
    ) -> Optional[Dict[str, Any]]:
        """Merge ``fields`` into a participant in one step; the result, or None if none."""
        old = self.get_participant(meeting_id, participant_id)
        if old is None:
            return None
        doc = {**old, **fields}
        if fields:
            doc["updated_at"] = now
        self._db().execute(
            "UPDATE participants SET name = ?, doc = ? WHERE meeting_id = ? AND id = ?",
            (doc["name"], dumps(doc), meeting_id, participant_id),
        )
        return doc

    def delete_participant(self, meeting_id: str, participant_id: str) -> bool:
        """Remove a participant; False if there was none."""
        cur = self._db().execute(
            "DELETE FROM participants WHERE meeting_id = ? AND id = ?",
            (meeting_id, participant_id),
        )
        return cur.rowcount > 0

    def list_participants(self, meeting_id: str, q: PageQuery) -> Tuple[int, List[Dict[str, Any]]]:
        """(total matching, this page's participants), oldest first."""
        where = "meeting_id = ?"
        args: List[Any] = [meeting_id]
        if q.search:
            where += (
                " AND (id = ? OR custom_participant_id = ?"
                " OR instr(lower(coalesce(name, '')), lower(?)) > 0)"
            )
            args += [q.search, q.search, q.search]
        db = self._db()
        total = int(
            db.execute(f"SELECT count(*) FROM participants WHERE {where}", args).fetchone()[0]
        )
        rows = db.execute(
            f"SELECT doc FROM participants WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*args, q.per_page, q.offset],
        ).fetchall()
        return total, [json.loads(r[0]) for r in rows]
