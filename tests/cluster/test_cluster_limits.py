"""The tiers' numbers hold for the cluster, not per node: per-minute windows,
monthly and lifetime counts are decided in Redis (cluster/tally.py)."""

from __future__ import annotations

import tempfile
from typing import Any, List

import pytest
from server._redis import RedisServer
from server._wire import Api, assert_envelope, poll

from cohrt_sync.server import LocalServer, limits
from cohrt_sync.server.cluster.link import Keys
from cohrt_sync.server.cluster.tally import RedisCounts
from cohrt_sync.server.errors import ApiError
from cohrt_sync.server.limits import MINT, Limiter, Tier
from cohrt_sync.server.state import Tenant

from .conftest import KEY


@pytest.fixture()
def tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    """A tier with small numbers of every kind."""
    monkeypatch.setitem(
        limits.TIERS,
        "tiny",
        Tier("tiny", per_minute={MINT: 4}, monthly={MINT: 6}, lifetime={MINT: 8}),
    )
    return "tiny"


def test_two_limiters_on_one_redis_count_together(redis_server: RedisServer, tiny: str) -> None:
    now = [1_800_000_000.0]
    counts = [RedisCounts(redis_server.url, f"n{i}", lambda: True, Keys()) for i in range(2)]
    nodes = [Limiter(tiny, lambda: now[0], shared=c) for c in counts]
    # Each node has its own copy of the tenant, as each process does.
    copies = [Tenant(id="t_shared", key_hash="h", secret=b"s") for _ in range(2)]
    for i in range(4):
        nodes[i % 2].take(copies[i % 2], MINT)
    with pytest.raises(ApiError) as refused:
        nodes[0].take(copies[0], MINT)
    assert refused.value.code == 429 and "per minute" in refused.value.message
    assert 1 <= int(refused.value.retry_after or 0) <= 60
    now[0] += 61
    nodes[1].take(copies[1], MINT)
    nodes[0].take(copies[0], MINT)
    with pytest.raises(ApiError) as refused:
        nodes[1].take(copies[1], MINT)
    assert refused.value.code == 429 and "monthly cap" in refused.value.message
    assert copies[0].counters["month:" + MINT] == 6  # the cluster's total, written down
    # Refused requests give their unit of the window back (else the third
    # would pass 4 per minute, and say so).
    for i in range(3):
        with pytest.raises(ApiError, match="monthly cap"):
            nodes[i % 2].take(copies[i % 2], MINT)
    for c in counts:
        c.close()


def test_a_lifetime_cap_pauses_the_tenant_on_every_node(redis_server: RedisServer) -> None:
    with tempfile.TemporaryDirectory(prefix="cohrt-limits-") as data:
        a, b = (
            LocalServer([KEY], provision=True, data_dir=data, cluster=redis_server.url,
                        tier="ephemeral").start()
            for _ in range(2)
        )  # fmt: skip
        try:
            apis = [Api(a.base_url, KEY), Api(b.base_url, KEY)]
            for i in range(5):  # 5 mints per minute on the ephemeral tier, cluster-wide
                assert apis[i % 2].mint_resp({"user_id": "u"}).status_code == 200
            for api in apis:
                r = api.mint_resp({"user_id": "u"})
                assert_envelope(r, 429, "RESOURCE_EXHAUSTED")
                assert "5 token mints per minute" in r.json()["error"]["message"]
            # 100 mints per ephemeral lifetime, whichever node made them.
            for minute in range(1, 20):
                for srv in (a, b):
                    srv.advance_clock(61)
                for i in range(5):
                    r = apis[(minute + i) % 2].mint_resp({"user_id": "u"})
                    assert r.status_code == 200, (minute, i, r.text)
            for srv in (a, b):
                srv.advance_clock(61)
            r = apis[0].mint_resp({"user_id": "u"})
            assert_envelope(r, 403, "FAILED_PRECONDITION")
            assert "100 token mints per ephemeral tenant lifetime" in r.json()["error"]["message"]
            # The other node learns the pause from the shared state.
            poll(lambda: apis[1].mint_resp({"user_id": "u"}).status_code == 403)
        finally:
            a.close()
            b.close()


def test_limits_refuse_with_503_while_redis_is_down(redis_server: RedisServer) -> None:
    with tempfile.TemporaryDirectory(prefix="cohrt-limits-") as data:
        node = LocalServer(
            [KEY], provision=True, data_dir=data, cluster=redis_server.url, tier="free"
        ).start()
        try:
            api = Api(node.base_url, KEY)
            assert api.mint_resp({"user_id": "u"}).status_code == 200
            redis_server.stop()
            r = poll(lambda: _refused(api), timeout=5)
            assert_envelope(r[0], 503, "UNAVAILABLE")
        finally:
            node.close()


def _refused(api: Api) -> List[Any]:
    r = api.mint_resp({"user_id": "u"})
    return [r] if r.status_code == 503 else []
