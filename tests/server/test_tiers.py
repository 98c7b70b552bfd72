"""The spec's published caps for the other tiers and the ephemeral lifetime caps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._wire import Api, Sock, assert_envelope, assert_refusal_envelope, refusal, uniq
from .conftest import make_server


@pytest.fixture(scope="module")
def tiered() -> Iterator[Any]:
    servers: dict = {}

    def get(tier: str) -> Any:
        if tier not in servers:
            srv = make_server(keys=[f"kt_{tier}_{i}" for i in range(3)], tier=tier)
            srv.start()
            servers[tier] = srv
        return servers[tier]

    try:
        yield get
    finally:
        for srv in servers.values():
            srv.stop()


@pytest.mark.parametrize("tier,per_minute", [("ephemeral", 5), ("free", 30), ("plus", 150)])
def test_token_mints_per_minute(tiered: Any, tier: str, per_minute: int) -> None:
    srv = tiered(tier)
    api = Api(srv.base_url, f"kt_{tier}_0")
    srv.advance_clock(61)
    for i in range(per_minute):
        r = api.mint_resp({"user_id": f"u{i}"})
        assert r.status_code == 200, (i, r.text)
    r = api.mint_resp({"user_id": "one-too-many"})
    assert_envelope(r, 429, "RESOURCE_EXHAUSTED")
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_free_tier_allows_50_sockets_not_51(tiered: Any) -> None:
    srv = tiered("free")
    api = Api(srv.base_url, "kt_free_1")
    srv.advance_clock(61)
    # Ten sockets for each of five users: one user may hold a fifth of the cap.
    tokens = [api.token(f"many{i}", ttl=3600) for i in range(6)]
    ch = uniq()
    socks = []
    try:
        for n in range(50):
            socks.append(Sock(srv.base_url, tokens[n // 10], ch))
            if len(socks) % 20 == 0:
                srv.advance_clock(61)  # stay under 120 requests per minute
        srv.advance_clock(61)
        status, body, _ = refusal(srv.base_url, token=tokens[5], channel=ch)
        assert status == 429, (status, body)
        assert_refusal_envelope(429, body, "RESOURCE_EXHAUSTED")
    finally:
        for s in socks:
            s.close()


def test_ephemeral_lifetime_token_mint_cap(tiered: Any) -> None:
    """Ephemeral: 100 token mints per tenant lifetime, however slowly they are made."""
    srv = tiered("ephemeral")
    api = Api(srv.base_url, "kt_ephemeral_1")
    for i in range(100):
        if i % 5 == 0:
            srv.advance_clock(61)  # a fresh minute: stay under 5 mints/min and 30 requests/min
        r = api.mint_resp({"user_id": f"u{i}"})
        assert r.status_code == 200, (i, r.text)
    srv.advance_clock(61)
    r = api.mint_resp({"user_id": "u100"})
    # refused as exhausted (429), or the tenant paused as the spec says (403)
    assert r.status_code in (429, 403), r.text
    assert_envelope(r, r.status_code)
