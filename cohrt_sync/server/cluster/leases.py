"""Tenant ownership: a lease in Redis with a fencing token, checked where the write lands.

The owner of a tenant is the node holding ``lease:<tenant>`` (``node|token``,
expiring after :data:`LEASE_TTL_MS` unless renewed). Every token is new
(``INCR``), so a later owner always holds a larger one. The owner stores its
token in the tenant's own SQLite file (``_cohrt_fence``) and every write the
server makes to that file first checks, inside its transaction and under the
file's write lock, that

1. this node's lease has not run out by its own clock (:attr:`Lease.deadline`
   is set back from the expiry Redis was asked for), and
2. no larger token is stored.

A new owner's first act is an empty write that stores its token. So once it
owns the tenant, a stale owner (paused, partitioned) can't commit: either its
lease ran out (1), or the new token is in the file (2). docs/cluster.md gives
the whole argument.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Dict, Optional, Tuple

import attrs

from ..sqlpolicy import FENCE_TABLE
from .link import RedisLink

#: How long a lease lasts unless renewed, and how often the owner renews it.
LEASE_TTL_MS = 3000
RENEW_EVERY_S = 0.75
#: How much earlier than Redis a node counts its own lease as over (clock rates,
#: the time a renewal spent in flight).
SAFETY_MARGIN_S = 0.5


class NotOwner(Exception):
    """This node may not write the tenant's file: its lease ran out or a newer owner wrote."""


@attrs.define(eq=False)
class Lease:
    """A lease this node holds on one tenant."""

    tenant: str
    #: ``node|token`` as stored in Redis.
    value: str
    token: int
    #: ``time.monotonic()`` past which this node no longer counts on it.
    deadline: float

    def valid(self) -> bool:
        """Whether this node may still act as the tenant's owner."""
        return time.monotonic() < self.deadline

    def guard(self, conn: sqlite3.Connection) -> None:
        """The fence, run inside a write transaction on the tenant's file (its worker thread).

        :raises NotOwner: the lease ran out, or a newer owner's token is stored.
        """
        if not self.valid():
            raise NotOwner("this node's lease on the tenant ran out; the write was refused")
        conn.execute(f"CREATE TABLE IF NOT EXISTS main.{FENCE_TABLE} (token INTEGER NOT NULL)")
        stored = int(conn.execute(f"SELECT max(token) FROM main.{FENCE_TABLE}").fetchone()[0] or 0)
        if stored > self.token:
            self.deadline = 0.0
            raise StaleToken(stored)
        if stored < self.token:
            conn.execute(f"DELETE FROM main.{FENCE_TABLE}")
            conn.execute(f"INSERT INTO main.{FENCE_TABLE} (token) VALUES (?)", (self.token,))


class StaleToken(NotOwner):
    """The file holds a newer owner's token (or Redis lost its counter)."""

    def __init__(self, stored: int) -> None:
        super().__init__("a newer owner of the tenant has written; the write was refused")
        self.stored = stored


def parse_holder(value: str) -> Tuple[str, int]:
    """``node|token`` → (node, token)."""
    node, _, token = value.rpartition("|")
    return node, int(token)


class LeaseBook:
    """The leases this node holds, and taking, renewing and letting them go.

    :param link: the cluster's Redis.
    :param node: this node's id.
    """

    def __init__(self, link: RedisLink, node: str) -> None:
        self.link = link
        self.node = node
        self.held: Dict[str, Lease] = {}
        self._locks: Dict[str, asyncio.Lock] = {}

    def lock(self, tenant: str) -> asyncio.Lock:
        """Serialises taking one tenant's lease on this node."""
        lock = self._locks.get(tenant)
        if lock is None:
            lock = self._locks[tenant] = asyncio.Lock()
        return lock

    def current(self, tenant: str) -> Optional[Lease]:
        """This node's lease on ``tenant`` if it still counts on it."""
        lease = self.held.get(tenant)
        if lease is not None and not lease.valid():
            del self.held[tenant]
            return None
        return lease

    async def acquire(self, tenant: str) -> Tuple[str, Optional[Lease]]:
        """Take the lease if free: (holder node, this node's new lease or None)."""
        keys = self.link.keys
        sent = time.monotonic()
        value = await self.link.run(
            "ACQUIRE", [keys.lease(tenant), keys.fence(tenant)], [self.node, LEASE_TTL_MS]
        )
        node, token = parse_holder(str(value))
        if node != self.node:
            return node, None
        lease = self.held.get(tenant)
        if lease is None or lease.value != value:
            lease = Lease(tenant, str(value), token, _deadline(sent))
        # Not yet in `held`: the caller claims the file first.
        return node, lease

    async def bump(self, lease: Lease, lowest: int) -> bool:
        """Re-issue ``lease`` with a token above ``lowest``; False if it was lost."""
        keys = self.link.keys
        sent = time.monotonic()
        value = await self.link.run(
            "BUMP",
            [keys.lease(lease.tenant), keys.fence(lease.tenant)],
            [lease.value, self.node, lowest, LEASE_TTL_MS],
        )
        if not value:
            lease.deadline = 0.0
            return False
        lease.value = str(value)
        lease.token = parse_holder(lease.value)[1]
        lease.deadline = _deadline(sent)
        return True

    async def renew_all(self) -> None:
        """Extend every held lease; one that is gone stops counting at once."""
        for tenant, lease in list(self.held.items()):
            sent = time.monotonic()
            kept = await self.link.run(
                "RENEW", [self.link.keys.lease(tenant)], [lease.value, LEASE_TTL_MS]
            )
            if kept:
                lease.deadline = _deadline(sent)
            else:
                lease.deadline = 0.0
                self.held.pop(tenant, None)

    async def release_all(self) -> None:
        """Let every held lease go (a clean shutdown: the next owner needn't wait)."""
        for tenant, lease in list(self.held.items()):
            lease.deadline = 0.0
            await self.link.run("RELEASE", [self.link.keys.lease(tenant)], [lease.value])
        self.held.clear()


def _deadline(sent: float) -> float:
    return sent + LEASE_TTL_MS / 1000 - SAFETY_MARGIN_S


__all__ = ["LEASE_TTL_MS", "Lease", "LeaseBook", "NotOwner", "StaleToken", "parse_holder"]
