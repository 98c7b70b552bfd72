"""The fence: a node whose lease ran out, or that a newer owner replaced, can't
write the tenant's file (cohrt_sync.server.cluster.leases; docs/cluster.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cohrt_sync.server.cluster.leases import Lease, LeaseBook, NotOwner, StaleToken
from cohrt_sync.server.cluster.link import RedisLink
from cohrt_sync.server.config import Config
from cohrt_sync.server.tenantdb import TenantDB

ROW = ("chat:fence", "message", '{"n":1}', 1, None)


def _db(path: Path) -> TenantDB:
    db = TenantDB(path, "test-fence-db", Config().sql_limits())
    db.run(db.ensure_schema)
    return db


async def _owner(url: str, node: str, tenant: str) -> tuple[LeaseBook, Lease]:
    link = RedisLink(url)
    await link.connect()
    book = LeaseBook(link, node)
    holder, lease = await book.acquire(tenant)
    assert holder == node and lease is not None
    return book, lease


def test_a_newer_owners_token_in_the_file_refuses_the_old_owner(
    redis_server: Any, tmp_path: Path
) -> None:
    url = redis_server.url

    async def scenario() -> None:
        book_a, lease_a = await _owner(url, "node-a", "t_x")
        old = _db(tmp_path / "t.sqlite3")
        old.write_guard = lease_a.guard
        assert old.run(old.insert_batch, [ROW]) == [1]
        # Node A is paused past its lease; node B takes the tenant over.
        await book_a.link.client.delete(book_a.link.keys.lease("t_x"))
        book_b, lease_b = await _owner(url, "node-b", "t_x")
        assert lease_b.token > lease_a.token
        new = _db(tmp_path / "t.sqlite3")
        new.write_guard = lease_b.guard
        new.run(new.guarded_write)
        # A's own clock says its lease is still good: only the file's token stops it.
        assert lease_a.valid()
        with pytest.raises(StaleToken):
            old.run(old.insert_batch, [ROW])
        assert not lease_a.valid()  # and it stops counting on the lease at once
        with pytest.raises(NotOwner):
            old.run(old.execute_sql, "INSERT INTO realtime_messages"
                    " (channel, event, data, created_at_ms) VALUES ('c', 'e', '1', 1)", [])
        assert new.run(new.insert_batch, [ROW]) == [2]
        rows = new.run(new.execute_sql, "SELECT count(*) AS n FROM realtime_messages", [])
        assert b'"n":2' in rows
        for db in (old, new):
            db.close()
        for book in (book_a, book_b):
            await book.link.close()

    asyncio.run(scenario())


def test_a_lease_that_ran_out_refuses_writes_before_anyone_else_claims(
    redis_server: Any, tmp_path: Path
) -> None:
    async def scenario() -> None:
        book, lease = await _owner(redis_server.url, "node-a", "t_y")
        db = _db(tmp_path / "t.sqlite3")
        db.write_guard = lease.guard
        assert db.run(db.insert_batch, [ROW]) == [1]
        lease.deadline = time.monotonic() - 0.001  # what a long pause does to it
        with pytest.raises(NotOwner, match="ran out"):
            db.run(db.insert_batch, [ROW])
        assert db.run(db.history, "chat:fence", 0, 10)[-1]["id"] == 1
        db.close()
        await book.link.close()

    asyncio.run(scenario())


def test_tokens_go_on_above_the_files_after_redis_lost_its_counter(
    redis_server: Any, tmp_path: Path
) -> None:
    async def scenario() -> None:
        book, lease = await _owner(redis_server.url, "node-a", "t_z")
        db = _db(tmp_path / "t.sqlite3")
        # A token from before Redis restarted empty.
        db.write_guard = Lease("t_z", "old|40", 40, time.monotonic() + 60).guard
        db.run(db.guarded_write)
        db.write_guard = lease.guard
        with pytest.raises(StaleToken) as refused:
            db.run(db.guarded_write)
        lease.deadline = time.monotonic() + 60  # refused writes stop the lease; re-take it
        assert await book.bump(lease, refused.value.stored)
        assert lease.token > 40
        db.run(db.guarded_write)
        assert db.run(db.insert_batch, [ROW]) == [1]
        db.close()
        await book.link.close()

    asyncio.run(scenario())


def test_taking_a_lease_this_node_still_holds_extends_it(redis_server: Any) -> None:
    async def scenario() -> None:
        book, lease = await _owner(redis_server.url, "node-a", "t_w")
        key = book.link.keys.lease("t_w")
        await book.link.client.pexpire(key, 200)  # its renewals failed for a while
        holder, again = await book.acquire("t_w")
        assert holder == "node-a" and again is not None and again.token == lease.token
        # The node counts the lease from now on: so must Redis.
        assert await book.link.client.pttl(key) > 2000
        await book.link.close()

    asyncio.run(scenario())
