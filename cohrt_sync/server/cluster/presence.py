"""Presence across nodes: who is on a channel anywhere, one ``join`` and one ``leave`` per user.

Each node counts its own sockets per user (the hub does). Only a user's
first socket on a node, and its last, reach Redis: :data:`.scripts.JOIN`
and :data:`.scripts.LEAVE` add or remove this node from the user's set of
nodes and publish the ``join``/``leave`` only when that set starts or ends,
atomically. A node that dies is reaped by another (:meth:`ClusterPresence.reap`):
its entries go as if each of its users had left.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Set, Tuple

from .._json import dumps
from ..backplane import PresenceList
from ..presence_frames import join_frame, leave_frame
from .link import RedisLink, flat_pairs

if TYPE_CHECKING:
    from ..backplane import Socket

#: One presence entry: (tenant, channel, user).
Entry = Tuple[str, str, str]


def entry_of(conn: Socket) -> Entry:
    """A socket's presence entry."""
    return (conn.tenant_id, conn.channel, conn.user_id)


def entry_id(entry: Entry) -> str:
    """How an entry is named in a node's set of entries."""
    return json.dumps(list(entry))


class ClusterPresence:
    """This node's side of the cluster's presence.

    :param link: the cluster's Redis.
    :param node: this node's id.
    """

    def __init__(self, link: RedisLink, node: str) -> None:
        self.link = link
        self.node = node

    def _bus(self, tenant: str, event: Dict[str, object]) -> str:
        return tenant + "\n" + dumps({"o": self.node, **event})

    async def join(
        self, entry: Entry, name: Optional[str], conn_id: int
    ) -> PresenceList:
        """Put this node in the user's set; publishes the ``join`` if the user is new.

        :returns: the channel's users in the cluster, for the ``subscribed`` frame.
        """
        tenant, channel, user = entry
        k = self.link.keys
        message = self._bus(
            tenant, {"k": "join", "c": channel, "f": join_frame(channel, user, name), "s": conn_id}
        )
        _, roster = await self.link.run(
            "JOIN",
            [k.roster(tenant, channel), k.user_nodes(*entry), k.entries(self.node), k.bus],
            [self.node, user, dumps(name), entry_id(entry), message],
        )
        return [{"id": uid, "name": json.loads(raw)} for uid, raw in flat_pairs(roster)]

    async def roster(self, tenant: str, channel: str) -> PresenceList:
        """The channel's users in the cluster."""
        key = self.link.keys.roster(tenant, channel)
        pairs = await self.link.call(self.link.client.hgetall(key))
        return [{"id": uid, "name": json.loads(raw)} for uid, raw in pairs.items()]

    async def leave(
        self, entry: Entry, name: Optional[str], now: float, node: Optional[str] = None
    ) -> bool:
        """Take ``node`` (this one by default) out of the user's set; publishes the
        ``leave`` if that was the user's last node. True if it was."""
        tenant, channel, user = entry
        k = self.link.keys
        node = node or self.node
        message = self._bus(
            tenant, {"k": "leave", "c": channel, "f": leave_frame(channel, user, name, now)}
        )
        left = await self.link.run(
            "LEAVE",
            [k.roster(tenant, channel), k.user_nodes(*entry), k.entries(node), k.bus],
            [node, user, entry_id(entry), message],
        )
        return bool(left)

    async def resync(self, here: Dict[Entry, Optional[str]], now: float) -> None:
        """Make Redis hold exactly this node's entries ``here`` (entry → name).

        After Redis lost its data, after this node was reaped while paused, or
        after a join or leave could not reach Redis: what changed is announced.
        """
        stored: Set[str] = set(
            await self.link.call(self.link.client.smembers(self.link.keys.entries(self.node)))
        )
        wanted = {entry_id(e): e for e in here}
        for raw in stored - set(wanted):
            entry = _parse(raw)
            if entry is not None:
                await self.leave(entry, await self._name(entry), now)
            else:
                await self.link.call(self.link.client.srem(self.link.keys.entries(self.node), raw))
        for entry in wanted.values():
            # JOIN is idempotent for a node already in the user's set.
            await self.join(entry, here[entry], 0)

    async def reap(self, dead: str, now: float) -> List[Entry]:
        """Remove a dead node's entries, sending a ``leave`` for each user it was the last
        node of; returns the entries it held."""
        raws: Iterable[str] = await self.link.call(
            self.link.client.smembers(self.link.keys.entries(dead))
        )
        gone: List[Entry] = []
        for raw in raws:
            entry = _parse(raw)
            if entry is None:
                continue
            await self.leave(entry, await self._name(entry), now, node=dead)
            gone.append(entry)
        await self.link.call(self.link.client.delete(self.link.keys.entries(dead)))
        return gone

    async def bury(self, node: str, now: float) -> None:
        """A node is gone (dead, or shut down): its users leave where it was their
        last node, and its socket counts and address go."""
        k, client = self.link.keys, self.link.client
        await self.reap(node, now)
        for tenant in await self.link.call(client.smembers(k.socket_tenants(node))):
            await self.link.call(client.hdel(k.sockets(tenant), node))
        await self.link.call(client.delete(k.socket_tenants(node), k.node(node)))
        await self.link.call(client.zrem(k.nodes, node))

    async def _name(self, entry: Entry) -> Optional[str]:
        tenant, channel, user = entry
        key = self.link.keys.roster(tenant, channel)
        raw = await self.link.call(self.link.client.hget(key, user))
        try:
            name = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return name if isinstance(name, str) else None


def _parse(raw: str) -> Optional[Entry]:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value):
        return (value[0], value[1], value[2])
    return None


__all__ = ["ClusterPresence", "Entry", "entry_id", "entry_of"]
