"""Fixtures for the cluster tests: a real redis-server per test, nodes on a shared data dir."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, List

import pytest
from server._redis import RedisServer

from ._nodes import Node

KEY = "kc_3b8e1f0a9d7c6e52"
#: The tenant id the server derives from KEY (state.py: "t_" + sha256[:20]).
TENANT = "t_" + hashlib.sha256(KEY.encode()).hexdigest()[:20]


@pytest.fixture()
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty redis-server for this test, killed at its end."""
    with RedisServer() as srv:
        yield srv


@pytest.fixture()
def rclient(redis_server: RedisServer) -> Iterator[Any]:
    """A redis-py client on it (answers decoded)."""
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture()
def nodes(redis_server: RedisServer, tmp_path: Path) -> Iterator[List[Node]]:
    """Two ``cohrt-sync serve --cluster`` processes sharing one data dir; the first
    starts first, so it owns the tenant."""
    data = tmp_path / "data"
    started: List[Node] = []
    try:
        for i in range(2):
            args = ["--key", KEY, "--provision", "--log-level", "info"]
            started.append(Node(redis_server.url, data, args, tmp_path / f"n{i}.log"))
        yield started
    finally:
        for node in started:
            node.stop()
