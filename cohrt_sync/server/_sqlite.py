"""One SQLite file driven from one named worker thread.

Every call runs on that thread, so the event loop never blocks on SQLite and
a single connection serialises all access to the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class SqliteWorker:
    """A WAL-mode SQLite connection owned by one worker thread.

    :param path: the database file (created, with its folder, on first use).
    :param thread_name: the worker thread's name.
    :param synchronous: SQLite's ``synchronous`` pragma: ``FULL`` makes every
        commit durable across power loss.
    """

    def __init__(self, path: Path, thread_name: str, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._conn: Optional[sqlite3.Connection] = None
        self._closed = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread and wait for it (never on the event loop)."""
        return self._executor.submit(fn, *args).result()

    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use (call only on the worker thread)."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            self._setup(conn)
            self._conn = conn
        return self._conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Prepare a new connection (schema, authorizer); for subclasses."""

    def _close_connections(self) -> None:
        """Close every connection (on the worker thread); subclasses add theirs."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection on its thread, then stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True

        try:
            self._executor.submit(self._close_connections).result(timeout=10)
        finally:
            self._executor.shutdown(wait=True)
