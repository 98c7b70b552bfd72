"""Cluster mode: several ``cohrt-sync serve`` processes as one service, on Redis.

``cohrt-sync serve --cluster redis://HOST:PORT/DB`` (or
``LocalServer(cluster="redis://...")``) makes this process one node:
:func:`connect` reaches Redis and returns the node's
:class:`~.plane.RedisBackplane`, which the hub and core use in place of the
single-process :class:`~..backplane.Backplane`; :func:`add_routes` adds the
node-to-node endpoints. docs/cluster.md describes the design.
"""

from __future__ import annotations

from pathlib import Path

from ..directsql import SqlLimits
from .link import ClusterUnavailable, RedisLink, check_url, redact_url
from .plane import RedisBackplane
from .routes import add_routes


async def connect(url: str, data_dir: Path, sql_limits: SqlLimits) -> RedisBackplane:
    """This process as a node of the cluster whose Redis is at ``url``.

    :raises ClusterUnavailable: the [cluster] extra is missing, Redis can't
        be reached, or ``data_dir`` is not the cluster's (the message is one
        line saying what to do).
    """
    link = RedisLink(check_url(url))
    secret = await link.connect()
    await link.check_data_dir(data_dir)
    return RedisBackplane(link, secret, sql_limits)


__all__ = [
    "ClusterUnavailable",
    "RedisBackplane",
    "add_routes",
    "check_url",
    "connect",
    "redact_url",
]
