"""Fixtures for the server conformance suite: real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._wire import Api

# Distinctive keys so a leak into a log line is unmistakable.
KEY_A = "ka_7c1e0f3b9d2a4e58"
KEY_B = "kb_52d9e6a1c0f84b37"
#: A tenant whose realtime_messages table a test drops on purpose.
KEY_DROP = "kd_0e9b8a7f6c5d4e3f"
#: A tenant the fuzz tests throw garbage at.
KEY_FUZZ = "kf_1f2e3d4c5b6a7988"


def make_server(**kw: Any) -> Any:
    from cohrt_sync.server import LocalServer

    opts: dict = {"host": "127.0.0.1", "port": 0, "data_dir": None, "provision": True}
    opts.update(kw)
    return LocalServer(**opts)


#: Modules whose tests run twice: against one server, and against a 2-node
#: cluster with their connections spread over both nodes (docs/cluster.md).
#: The others drive one server's controls (restart, clock, drops) or start
#: their own servers. Tenant isolation runs on both too
#: (tests/adversarial/test_tenant_isolation.py).
CLUSTER_MODULES = frozenset(
    {
        "test_ws",
        "test_presence",
        "test_history",
        "test_http_publish",
        "test_sql",
        "test_tokens",
        "test_concurrency",
        "test_robustness",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in CLUSTER_MODULES and "deployment" in metafunc.fixturenames:
        metafunc.parametrize("deployment", ["one", "cluster"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> str:
    """``one`` server, or a 2-node ``cluster`` (the modules of CLUSTER_MODULES)."""
    return str(getattr(request, "param", "one"))


class Cluster:
    """Two in-process nodes on one Redis and data dir, behind a round-robin forwarder."""

    def __init__(self, **kw: Any) -> None:
        import tempfile

        from ._balancer import Balancer
        from ._redis import RedisServer

        self.redis = RedisServer().start()
        self._dir = tempfile.TemporaryDirectory(prefix="cohrt-cluster-")
        self.nodes = []
        try:
            for _ in range(2):
                node = make_server(data_dir=self._dir.name, cluster=self.redis.url, **kw)
                self.nodes.append(node.start())
            self.balancer = Balancer([("127.0.0.1", n.port) for n in self.nodes])
        except BaseException:
            self.stop()
            raise
        self.base_url = self.balancer.base_url

    def stop(self) -> None:
        balancer = getattr(self, "balancer", None)
        if balancer is not None:
            balancer.close()
            # The point of the cluster run: connections reached both nodes.
            assert min(balancer.served) > 0, balancer.served
        for node in self.nodes:
            node.close()
        self.redis.stop()
        self._dir.cleanup()


@pytest.fixture(scope="session")
def server(deployment: str) -> Iterator[Any]:
    """One shared server (unlimited tier, 64 KiB payloads). Never advance its clock."""
    keys = [KEY_A, KEY_B, KEY_DROP, KEY_FUZZ]
    if deployment == "cluster":
        cluster = Cluster(keys=keys, max_payload=65536)
        try:
            yield cluster
        finally:
            cluster.stop()
        return
    srv = make_server(keys=keys, max_payload=65536)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def base_url(server: Any) -> str:
    return str(server.base_url)


@pytest.fixture()
def api_a(base_url: str) -> Api:
    return Api(base_url, KEY_A)


@pytest.fixture()
def api_b(base_url: str) -> Api:
    return Api(base_url, KEY_B)
