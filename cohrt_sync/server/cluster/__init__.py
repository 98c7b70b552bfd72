"""Cluster mode: several ``cohrt-sync serve`` processes as one service, on Redis.

``cohrt-sync serve --cluster redis://HOST:PORT/DB`` (or
``LocalServer(cluster="redis://...")``) makes this process one node:
:func:`connect` reaches Redis and returns the node's
:class:`~.plane.RedisBackplane`, which the hub and core use in place of the
single-process :class:`~..backplane.Backplane`; :func:`.routes.add_routes`
adds the node-to-node endpoints. docs/cluster.md describes the design.

Importing this package loads no Redis client: :func:`connect` does, for a
server started with a cluster URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .checks import ClusterUnavailable, check_url, redact_url

if TYPE_CHECKING:
    from ..directsql import SqlLimits
    from .plane import RedisBackplane


async def connect(url: str, data_dir: Path, sql_limits: SqlLimits) -> RedisBackplane:
    """This process as a node of the cluster whose Redis is at ``url``.

    :raises ClusterUnavailable: the [cluster] extra is missing, Redis can't
        be reached, or ``data_dir`` is not the cluster's (the message is one
        line saying what to do).
    """
    from .link import RedisLink
    from .plane import RedisBackplane

    link = RedisLink(check_url(url))
    secret = await link.connect()
    await link.check_data_dir(data_dir)
    return RedisBackplane(link, secret, sql_limits)


__all__ = ["ClusterUnavailable", "check_url", "connect", "redact_url"]
