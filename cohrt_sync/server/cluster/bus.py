"""What other nodes broadcast, heard on the cluster's one pub/sub channel.

Every node listens to every message (as the Socket.IO Redis adapter does),
and skips at once those of tenants it has no socket of. A message is
``<tenant>\n<JSON>``, or ``*\n<JSON>`` about the cluster itself (a tenant's
settings changed, a node's socket count, a node gone).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict

from .counts import SocketCounts
from .forward import Forwarder
from .link import RedisError, RedisLink

if TYPE_CHECKING:
    from ..backplane import Sockets

log = logging.getLogger("cohrt_sync.server.cluster")

#: The "tenant" of messages about the cluster rather than one tenant's channels.
CONTROL = "*"


class BusReader:
    """Reads the bus and hands each message to the hub or to the node.

    :param link: the cluster's Redis.
    :param node: this node's id.
    :param hub: delivers frames to this node's sockets.
    :param forwarder: holds this node's socket publishes awaiting their answer.
    :param counts: the cluster's socket counts, told other nodes' changes.
    :param on_lost: the subscription broke (messages may have been missed).
    :param on_tenant: another node changed this tenant's settings.
    :param on_gone: another node reaped this one.
    """

    def __init__(
        self,
        link: RedisLink,
        node: str,
        hub: Sockets,
        forwarder: Forwarder,
        counts: SocketCounts,
        *,
        on_lost: Callable[[], None],
        on_tenant: Callable[[str], object],
        on_gone: Callable[[str], None],
    ) -> None:
        self.link = link
        self.node = node
        self.hub = hub
        self.forwarder = forwarder
        self.counts = counts
        self._on_lost = on_lost
        self._on_tenant = on_tenant
        self._on_gone = on_gone

    async def run(self) -> None:
        """Listen until cancelled, subscribing again whenever Redis comes back."""
        while True:
            pubsub = self.link.subscriber.pubsub()
            try:
                await pubsub.subscribe(self.link.keys.bus)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        try:
                            self.handle(message["data"])
                        except Exception:  # pragma: no cover - a bug; keep listening
                            log.exception("cluster: a bus message could not be handled")
            except (RedisError, OSError):
                self.link.up = False
                self._on_lost()
                await asyncio.sleep(0.2)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass

    def handle(self, data: str) -> None:
        """One bus message."""
        tenant, _, body = data.partition("\n")
        if tenant == CONTROL:
            self._control(json.loads(body))
            return
        if not self.counts.local.get(tenant):
            return  # no socket of that tenant here, and so no answer awaited
        event = json.loads(body)
        kind, origin = event.get("k"), event.get("o")
        hub = self.hub
        if kind == "pub":
            if origin == self.node:
                return  # sequenced here, and delivered here already
            for channel, frame, id_, node, ref, answer, failed in event["i"]:
                if node == self.node:
                    p = self.forwarder.claim(ref)
                    if p is not None:
                        # Answered before its own copy of the message, as on one node.
                        if failed:
                            p.error = answer
                        else:
                            p.ack, p.frame = answer, None
                        hub.finish(tenant, p)
                if frame is not None:
                    hub.fan_out(tenant, channel, frame, id_)
        elif kind in ("join", "leave"):
            skip = event.get("s") if origin == self.node else None
            hub.to_channel(tenant, event["c"], event["f"], skip=skip)

    def _control(self, event: Dict[str, Any]) -> None:
        kind, origin = event.get("k"), event.get("o")
        if origin == self.node:
            return
        if kind == "tenant":
            for tenant_id in event.get("t", []):
                self._on_tenant(tenant_id)
        elif kind == "sockets":
            self.counts.set_remote(event["t"], event["n"], int(event["c"]))
        elif kind == "gone":
            if event["n"] == self.node:
                return
            self._on_gone(event["n"])


__all__ = ["CONTROL", "BusReader"]
