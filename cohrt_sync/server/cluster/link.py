"""One node's connection to the cluster's Redis: its keys, its scripts, whether it is up.

Every Redis call of a node goes through :class:`RedisLink`, which remembers
whether the last one reached Redis (:attr:`RedisLink.up`): while it is down
the node refuses writes at once instead of timing out on each.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from . import scripts
from .checks import ClusterUnavailable, missing_extra, redact_url

try:  # the [cluster] extra
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - depends on the install
    aioredis = None  # type: ignore[assignment]

    class RedisError(Exception):  # type: ignore[no-redef]
        """Stands in for redis-py's, so this module imports without it."""

#: How long a node waits for Redis to accept a connection, and for an answer (seconds).
CONNECT_TIMEOUT_S = 1.0
ANSWER_TIMEOUT_S = 2.0


#: A file in the data dir naming the cluster it belongs to.
DATA_DIR_MARK = "cluster-id"


class Keys:
    """The names of everything a cluster keeps in Redis, under one prefix."""

    def __init__(self, prefix: str = "cohrt:") -> None:
        self.prefix = prefix
        #: The pub/sub channel every node listens on.
        self.bus = prefix + "bus"
        #: node id → its last heartbeat (Redis's clock, ms).
        self.nodes = prefix + "nodes"
        #: The cluster's shared secret for node-to-node HTTP.
        self.secret = prefix + "secret"
        #: The id written in the cluster's data dir (:data:`DATA_DIR_MARK`).
        self.data_dir = prefix + "data-dir"

    def node(self, node: str) -> str:
        """A node's address (hash)."""
        return f"{self.prefix}node:{node}"

    def lease(self, tenant: str) -> str:
        """The tenant's owner lease: ``node|token``, expiring."""
        return f"{self.prefix}lease:{tenant}"

    def fence(self, tenant: str) -> str:
        """The tenant's fencing-token counter."""
        return f"{self.prefix}fence:{tenant}"

    def mark(self, tenant: str) -> str:
        """The newest message id of the tenant broadcast to the bus."""
        return f"{self.prefix}sent:{tenant}"

    def roster(self, tenant: str, channel: str) -> str:
        """A channel's users in the cluster: user id → name (JSON)."""
        return self.prefix + "roster:" + json.dumps([tenant, channel])

    def user_nodes(self, tenant: str, channel: str, user: str) -> str:
        """The nodes where a user has a socket on a channel."""
        return self.prefix + "where:" + json.dumps([tenant, channel, user])

    def entries(self, node: str) -> str:
        """A node's presence entries (``[tenant, channel, user]`` JSON), for reaping it."""
        return f"{self.prefix}entries:{node}"

    def sockets(self, tenant: str) -> str:
        """Open sockets of a tenant per node (hash node → count)."""
        return f"{self.prefix}sockets:{tenant}"

    def socket_tenants(self, node: str) -> str:
        """The tenants a node has counted sockets for."""
        return f"{self.prefix}socket-tenants:{node}"

    def reaping(self, node: str) -> str:
        """Taken by the one node that reaps a dead one."""
        return f"{self.prefix}reaping:{node}"

    def window(self, key: str) -> str:
        """A limit's per-minute window (sorted set of receipts by time)."""
        return f"{self.prefix}window:{key}"

    def count(self, key: str) -> str:
        """A limit's monthly or lifetime counter."""
        return f"{self.prefix}count:{key}"


class RedisLink:
    """A node's Redis client, scripts and up/down state.

    :param url: ``redis://host:port/db`` (or ``rediss://``, ``unix://``).
    """

    def __init__(self, url: str) -> None:
        if aioredis is None:
            raise missing_extra()
        self.url = url
        self.keys = Keys()
        # Fail fast: a node that can't reach Redis refuses writes (503) rather
        # than hold them through retries.
        self.client: Any = aioredis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=ANSWER_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        #: The pub/sub connection: no answer timeout, it waits for messages.
        self.subscriber: Any = aioredis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self.up = False
        self._scripts = {
            name: self.client.register_script(getattr(scripts, name))
            for name in scripts.__all__
        }

    async def connect(self) -> str:
        """Reach Redis and learn (or set) the cluster's shared secret.

        :raises ClusterUnavailable: Redis can't be reached.
        """
        try:
            await self.client.ping()
            await self.client.set(self.keys.secret, secrets.token_urlsafe(32), nx=True)
            secret = await self.client.get(self.keys.secret)
        except (RedisError, OSError) as e:
            await self.close()
            raise ClusterUnavailable(
                f"cannot reach Redis at {redact_url(self.url)}: {e}"
                " (start redis-server, or check --cluster)"
            ) from None
        self.up = True
        return str(secret)

    async def check_data_dir(self, data_dir: Path) -> None:
        """Refuse a data dir other than the cluster's: the nodes must share one.

        The first node writes a random id into the data dir and into Redis;
        every node checks that the two agree (and adopts the file's when Redis
        has none, after Redis lost its data).

        :raises ClusterUnavailable: they differ (or Redis can't be reached).
        """
        mark = data_dir / DATA_DIR_MARK
        try:
            here = _read_mark(mark)
            stored = await self.client.get(self.keys.data_dir)
            if stored is None:
                if here is None:
                    here = _write_mark(mark)
                await self.client.set(self.keys.data_dir, here, nx=True)
                stored = await self.client.get(self.keys.data_dir)
        except (RedisError, OSError) as e:
            raise ClusterUnavailable(f"cannot check the data dir against Redis: {e}") from None
        if stored != here:
            await self.close()
            raise ClusterUnavailable(
                f"{data_dir} is not the data dir of the cluster at {redact_url(self.url)}:"
                " every node must open the same data dir (docs/cluster.md; for a new cluster"
                f" on this Redis, delete its key {self.keys.data_dir})"
            )

    async def run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one of :mod:`.scripts` by name; marks the link down or up."""
        return await self.call(self._scripts[script](keys=list(keys), args=list(args)))

    async def call(self, awaitable: Any) -> Any:
        """Await a Redis command, noting whether Redis answered.

        :raises RedisError: as redis-py raised it (``ConnectionError`` when down).
        """
        try:
            result = await awaitable
        except (RedisError, OSError) as e:
            if not isinstance(e, RedisError) or _is_link_error(e):
                self.up = False
            raise
        self.up = True
        return result

    async def close(self) -> None:
        """Close the client's connections."""
        for client in (self.client, self.subscriber):
            try:
                await client.aclose()
            except (RedisError, OSError):  # pragma: no cover - closing a dead link
                pass


def _is_link_error(e: Exception) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(e, (RedisConnectionError, RedisTimeoutError))


def _read_mark(mark: Path) -> Optional[str]:
    """The data dir's cluster id, or None if it has none yet."""
    for _ in range(100):
        try:
            text = mark.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        if text:
            return text
        time.sleep(0.01)  # another node is writing it this instant
    return None


def _write_mark(mark: Path) -> str:
    """Give the data dir a cluster id, unless another node just did; the id it has."""
    try:
        with open(mark, "x", encoding="ascii") as f:  # one node wins, the others read
            f.write(secrets.token_hex(16) + "\n")
    except FileExistsError:
        pass
    here = _read_mark(mark)
    if here is None:
        raise OSError(f"{mark} is empty")
    return here


def flat_pairs(flat: Optional[List[Any]]) -> List[Any]:
    """HGETALL's answer inside a script (a flat list) as ``[(field, value), ...]``."""
    flat = flat or []
    return list(zip(flat[0::2], flat[1::2]))


__all__ = ["ANSWER_TIMEOUT_S", "DATA_DIR_MARK", "Keys", "RedisError", "RedisLink", "flat_pairs"]
