"""The client under a tier's refusals: budgets, Retry-After, a paused tenant."""

from __future__ import annotations

import time
from typing import Any

import pytest

import cohrt_sync
from cohrt_sync import Retry

from .conftest import KEY


def test_mint_over_the_per_minute_cap_raises_at_once(make_server: Any,
                                                     make_client: Any) -> None:
    srv = make_server(tier="ephemeral")
    client = make_client(srv)  # the default policy: 3 retries within 10 s
    for _ in range(5):
        client.mint_token("u")
    started = time.monotonic()
    with pytest.raises(cohrt_sync.RateLimitedError) as info:
        client.mint_token("u")
    # Retry-After (about 60 s) is longer than the budget: no sleeping on it.
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after is not None and info.value.retry_after > 10


def test_publish_on_a_monthly_cap_raises_at_once(make_server: Any, make_client: Any,
                                                 channel_name: str) -> None:
    srv = make_server(tier="free")
    client = make_client(srv, retry=Retry(total=3, budget=5.0))
    client.publish(channel_name, {"n": 0})

    def exhaust_month(core: Any) -> None:
        # 500,000 publishes would take minutes: set the month's count to the cap.
        counters = core.state.by_key(KEY).counters
        counters["month:published messages"] = 500_000

    srv._call(exhaust_month)
    started = time.monotonic()
    with pytest.raises(cohrt_sync.RateLimitedError) as info:
        client.publish(channel_name, {"n": 1})
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after is not None and info.value.retry_after > 3600
