"""Where journal records go: one JSON-lines or SQLite file, rotated by size or by day.

The active file keeps the configured name; a rotated one is renamed to
``<stem>.<YYYY-MM-DD>.<NNNN><suffix>`` (the UTC day of its first record, then a
sequence number), so sorting the names sorts the records.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

__all__ = ["JsonLinesStore", "SqliteStore", "Store", "journal_files", "open_store"]

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _day(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")


def journal_files(path: Path) -> List[Path]:
    """The rotated files of the journal at ``path``, oldest first, then ``path`` itself.

    :param path: the active journal file.
    """
    rotated = sorted(path.parent.glob(f"{path.stem}.????-??-??.????{path.suffix}"))
    return rotated + ([path] if path.exists() else [])


class Store:
    """An append-only file of records with rotation; subclasses say how records are kept.

    :param path: the active file.
    :param rotate_bytes: rotate once the file reaches this size (``None``: never).
    :param rotate_daily: rotate when a record's UTC day differs from the file's first.
    """

    def __init__(self, path: Path, rotate_bytes: Optional[int], rotate_daily: bool) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.rotate_daily = rotate_daily
        self._first_day: Optional[str] = None

    def append(self, record: Dict[str, Any]) -> None:
        """Write one record (durably flushed), rotating first when due.

        :param record: a JSON-serialisable dict with a ``ts`` (epoch seconds).
        """
        day = _day(record["ts"])
        if self._due(day):
            self.rotate()
        if self._first_day is None:
            self._first_day = self._opened_day() or day
        self._write(record)

    def _due(self, day: str) -> bool:
        if not self.path.exists():
            return False
        if self.rotate_bytes is not None and self.path.stat().st_size >= self.rotate_bytes:
            return True
        first = self._first_day or self._opened_day()
        return self.rotate_daily and first is not None and first != day

    def rotate(self) -> Path:
        """Close the active file and rename it to its rotated name; returns that name."""
        self.close()
        day = self._first_day or self._opened_day() or _day(self.path.stat().st_mtime)
        taken = journal_files(self.path)
        seq = 1 + sum(1 for p in taken if f".{day}." in p.name)
        target = self.path.with_name(f"{self.path.stem}.{day}.{seq:04d}{self.path.suffix}")
        os.replace(self.path, target)
        self._first_day = None
        return target

    def _opened_day(self) -> Optional[str]:
        """The UTC day of the first record already in the active file, if any."""
        for record in self.read(self.path):
            return _day(record["ts"])
        return None

    def _write(self, record: Dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the active file (it reopens on the next append)."""
        raise NotImplementedError

    @staticmethod
    def read(path: Path) -> Iterator[Dict[str, Any]]:
        """The records of one file, in the order written.

        :param path: a journal file of this store's format.
        """
        raise NotImplementedError


class JsonLinesStore(Store):
    """One JSON object per line, flushed after each record."""

    def __init__(self, path: Path, rotate_bytes: Optional[int], rotate_daily: bool) -> None:
        super().__init__(path, rotate_bytes, rotate_daily)
        self._file: Any = None

    def _write(self, record: Dict[str, Any]) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @staticmethod
    def read(path: Path) -> Iterator[Dict[str, Any]]:
        """Each line's record; a torn last line (a crash mid-write) is skipped."""
        if not path.exists():
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    yield json.loads(line)


class SqliteStore(Store):
    """A ``journal`` table (``ts``, ``kind``, ``channel``, ``record`` JSON), one commit a record."""

    def __init__(self, path: Path, rotate_bytes: Optional[int], rotate_daily: bool) -> None:
        super().__init__(path, rotate_bytes, rotate_daily)
        self._db: Optional[sqlite3.Connection] = None

    def _write(self, record: Dict[str, Any]) -> None:
        if self._db is None:
            # Hooks of different channels run on different threads; Journal serialises them.
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, ts REAL NOT NULL,"
                " kind TEXT NOT NULL, channel TEXT NOT NULL, record TEXT NOT NULL)"
            )
        with self._db:
            self._db.execute(
                "INSERT INTO journal (ts, kind, channel, record) VALUES (?, ?, ?, ?)",
                (record["ts"], record["kind"], record["channel"],
                 json.dumps(record, ensure_ascii=False)),
            )

    def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def read(path: Path) -> Iterator[Dict[str, Any]]:
        """Each row's record, in insertion order."""
        if not path.exists():
            return
        # Not mode=ro: a reader may have to roll back a writer's hot journal.
        # mode=rw still never creates a file that rotation just renamed away.
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
        try:
            has = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'journal'").fetchone()
            rows = db.execute("SELECT record FROM journal ORDER BY seq").fetchall() if has else []
        finally:
            db.close()
        for (text,) in rows:
            yield json.loads(text)


def open_store(path: Path, fmt: Optional[str], rotate_bytes: Optional[int],
               rotate_daily: bool) -> Store:
    """The store for ``path``: ``fmt`` ``"jsonl"`` or ``"sqlite"``, or guessed from the suffix.

    :raises ValueError: an unknown format.
    """
    fmt = fmt or ("sqlite" if path.suffix in SQLITE_SUFFIXES else "jsonl")
    if fmt == "jsonl":
        return JsonLinesStore(path, rotate_bytes, rotate_daily)
    if fmt == "sqlite":
        return SqliteStore(path, rotate_bytes, rotate_daily)
    raise ValueError(f"journal format must be 'jsonl' or 'sqlite', not {fmt!r}")
