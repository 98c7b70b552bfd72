"""The server's own state: tenants, their provisioning, tier and signing secrets.

Kept in ``server.sqlite3`` in the data dir, beside one database file per
tenant. Application keys are stored only as SHA-256 digests.

Two writers share the file: the server, and ``cohrt-sync tenant`` (see
:mod:`cohrt_sync.server.tenantadmin`), which may run beside it. The operator's
columns (``tier``, ``account``, ``unpause_requests``) are written by the server
only when it starts; while it runs it re-reads them whenever the operator's
commands have committed (they bump ``PRAGMA user_version``), and its own writes
leave them alone, so a claim or an unpause is never overwritten by a stale save.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import attrs

from ._sqlite import SqliteWorker

#: How often a running server looks for an operator's change to the state file.
REFRESH_INTERVAL_S = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    secret BLOB NOT NULL,
    realtime INTEGER NOT NULL DEFAULT 0,
    database INTEGER NOT NULL DEFAULT 0,
    write_region TEXT,
    paused INTEGER NOT NULL DEFAULT 0,
    counters TEXT NOT NULL DEFAULT '{}',
    extra TEXT NOT NULL DEFAULT '{}'
)
"""
#: Columns added after the first schema: (name, declaration), added to older files.
_ADDED_COLUMNS = (
    ("tier", "TEXT"),
    ("account", "TEXT"),
    ("unpause_requests", "INTEGER NOT NULL DEFAULT 0"),
    ("unpauses_done", "INTEGER NOT NULL DEFAULT 0"),
)


def migrate(conn: sqlite3.Connection) -> None:
    """Create the tenants table, or add the columns an older file lacks."""
    conn.execute(_SCHEMA)
    have = {row[1] for row in conn.execute("PRAGMA table_info(tenants)")}
    for name, decl in _ADDED_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE tenants ADD COLUMN {name} {decl}")


def key_digest(key: str) -> str:
    """SHA-256 of an application key: how keys are looked up and stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@attrs.define
class Tenant:
    """One application key's tenant and what it has provisioned."""

    id: str
    key_hash: str
    secret: bytes = attrs.field(repr=False)
    realtime: bool = False
    database: bool = False
    write_region: Optional[str] = None
    paused: bool = False
    #: The tier claimed for this key (None: the server's default tier).
    tier: Optional[str] = None
    #: The account whose per-minute and monthly buckets this key shares, if any.
    account: Optional[str] = None
    #: ``cohrt-sync tenant unpause`` requests made, and how many the server applied.
    unpause_requests: int = 0
    unpauses_done: int = 0
    #: Lifetime and monthly usage counters of the tier limits.
    counters: Dict[str, int] = attrs.field(factory=dict)
    #: Room for features that keep per-tenant state (e.g. RealtimeKit's app id).
    extra: Dict[str, Any] = attrs.field(factory=dict)


class StateStore(SqliteWorker):
    """Tenants in memory, written through to ``server.sqlite3`` on its worker thread.

    :param path: the state database file.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "cohrt-sync-state")
        self.tenants: Dict[str, Tenant] = {}
        self._by_key: Dict[str, Tenant] = {}
        for t in self.run(self._load):
            self.tenants[t.id] = t
            self._by_key[t.key_hash] = t
        # Read on the event loop: data_version and a small SELECT never wait
        # for the writer in WAL mode, and cost microseconds.
        self._watch = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._seen_version = self._data_version()
        self._looked_at = time.monotonic()
        self._seen_admin = self._admin_version()
        #: Told the ids of tenants just written (a cluster tells its other nodes).
        self.on_saved: Optional[Callable[[List[str]], None]] = None

    def reload(self, tenant_id: str) -> Optional[Tenant]:
        """Take a tenant's row as another process wrote it (a cluster's other node).

        Its secret, provisioning and pause are read; usage counters stay this
        process's own. A tenant new to this process is added.
        """
        row = self._watch.execute(
            "SELECT key_hash, secret, realtime, database, write_region, paused, extra"
            " FROM tenants WHERE id = ?",
            (tenant_id,),
        ).fetchone()
        if row is None:
            return None
        t = self.tenants.get(tenant_id)
        if t is None:
            t = self.tenants[tenant_id] = Tenant(id=tenant_id, key_hash=row[0], secret=b"")
            self._by_key[row[0]] = t
        t.secret, t.realtime, t.database = bytes(row[1]), bool(row[2]), bool(row[3])
        t.write_region, t.paused, t.extra = row[4], bool(row[5]), json.loads(row[6])
        return t

    def _setup(self, conn: sqlite3.Connection) -> None:
        migrate(conn)

    def _data_version(self) -> int:
        return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def _admin_version(self) -> int:
        return int(self._watch.execute("PRAGMA user_version").fetchone()[0])

    def refresh(self) -> bool:
        """Re-read the operator's columns if ``cohrt-sync tenant`` changed them.

        Any commit of another connection (this server's own writer included)
        changes ``data_version``; the operator's commands also bump
        ``user_version``, so only theirs cost a re-read.

        :returns: whether anything was re-read.
        """
        # Called for every decision on the hot path (each publish): look at
        # the file at most every REFRESH_INTERVAL_S. An operator's command is
        # a process of its own that takes far longer to start than that.
        now = time.monotonic()
        if now - self._looked_at < REFRESH_INTERVAL_S:
            return False
        self._looked_at = now
        version = self._data_version()
        if version == self._seen_version:
            return False
        self._seen_version = version
        admin = self._admin_version()
        if admin == self._seen_admin:
            return False
        self._seen_admin = admin
        rows = self._watch.execute("SELECT id, tier, account, unpause_requests FROM tenants")
        for tenant_id, tier, account, requests in rows:
            t = self.tenants.get(tenant_id)
            if t is not None:
                t.tier, t.account, t.unpause_requests = tier, account, requests
        return True

    def _load(self) -> List[Tenant]:
        return [
            Tenant(
                id=row[0],
                key_hash=row[1],
                secret=bytes(row[2]),
                realtime=bool(row[3]),
                database=bool(row[4]),
                write_region=row[5],
                paused=bool(row[6]),
                counters=json.loads(row[7]),
                extra=json.loads(row[8]),
                tier=row[9],
                account=row[10],
                unpause_requests=row[11],
                unpauses_done=row[12],
            )
            for row in self._db().execute(
                "SELECT id, key_hash, secret, realtime, database, write_region, paused,"
                " counters, extra, tier, account, unpause_requests, unpauses_done FROM tenants"
            )
        ]

    def by_key(self, key: str) -> Optional[Tenant]:
        """The tenant of application key ``key``, or None."""
        return self._by_key.get(key_digest(key))

    def add_key(self, key: str) -> Tenant:
        """Declare ``key`` (idempotent) and return its tenant, in memory only.

        Persist it with :meth:`save` (on the event loop) or
        :meth:`save_all_now` (before serving).
        """
        digest = key_digest(key)
        existing = self._by_key.get(digest)
        if existing is not None:
            return existing
        # The id derives from the digest so the same key names the same tenant
        # file on every data dir, and no key material reaches a file name.
        tenant = Tenant(id="t_" + digest[:20], key_hash=digest, secret=secrets.token_bytes(32))
        self.tenants[tenant.id] = tenant
        self._by_key[digest] = tenant
        return tenant

    def _write(self, t: Tenant) -> None:
        # The operator's columns are left out: see the module docstring.
        self._db().execute(
            "INSERT INTO tenants (id, key_hash, secret, realtime, database, write_region,"
            " paused, counters, extra, unpauses_done) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET realtime = excluded.realtime,"
            " database = excluded.database, write_region = excluded.write_region,"
            " paused = excluded.paused, counters = excluded.counters,"
            " extra = excluded.extra, unpauses_done = excluded.unpauses_done",
            (
                t.id,
                t.key_hash,
                t.secret,
                int(t.realtime),
                int(t.database),
                t.write_region,
                int(t.paused),
                json.dumps(t.counters),
                json.dumps(t.extra),
                t.unpauses_done,
            ),
        )

    def _write_tier(self, t: Tenant) -> None:
        self._db().execute(
            "UPDATE tenants SET tier = ?, account = ? WHERE id = ?", (t.tier, t.account, t.id)
        )

    def _write_tiers(self, tenants: List[Tenant]) -> None:
        for t in tenants:
            self._write_tier(t)

    def save_tiers_now(self, tenants: List[Tenant]) -> None:
        """Store ``tenants``' tier and account as the server's settings name them
        (before serving: the one time the server writes the operator's columns)."""
        self.run(self._write_tiers, tenants)

    def _write_all(self) -> None:
        for t in list(self.tenants.values()):
            self._write(t)

    async def save(self, tenant: Tenant) -> None:
        """Persist ``tenant``'s current fields without blocking the event loop."""
        await self.save_many([tenant])

    async def save_many(self, tenants: List[Tenant]) -> None:
        """Persist the current fields of ``tenants`` in one transaction (one fsync)."""
        snapshots = [
            attrs.evolve(t, counters=dict(t.counters), extra=json.loads(json.dumps(t.extra)))
            for t in tenants
        ]
        await self.call(self._write_in_one_transaction, snapshots)
        if self.on_saved is not None:
            self.on_saved([t.id for t in tenants])

    def _write_in_one_transaction(self, tenants: List[Tenant]) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for t in tenants:
                self._write(t)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def save_all_now(self) -> None:
        """Write every tenant and wait for it (before serving, or at shutdown)."""
        self.run(self._write_all)

    def all(self) -> List[Tenant]:
        """Every tenant."""
        return list(self.tenants.values())

    def close(self) -> None:
        """Write every tenant after the saves already queued, then close; idempotent."""
        if not self._closed:
            self.save_all_now()
            self._watch.close()
        super().close()
