"""Each user's share of a tenant's sockets, as a value with its own clock (no server)."""

from __future__ import annotations

from typing import Optional

import pytest

from cohrt_sync.server.errors import ApiError
from cohrt_sync.server.limits import TIERS
from cohrt_sync.server.sockcaps import SWEEP_AT, SocketCaps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "tier,share,sockets,opens",
    [
        ("ephemeral", None, 2, 6),
        ("free", None, 10, 24),
        ("plus", None, 100, 120),
        ("pro", None, 500, 600),
        ("unlimited", 3648, 729, 120),
        ("unlimited", None, None, 120),
        ("pro", 1000, 200, 600),  # the server's per-tenant share, when lower than the tier's
        ("free", 4, 2, 24),  # never fewer than two: a personal channel and one more
    ],
)
def test_the_automatic_share_is_a_fifth(
    tier: str, share: Optional[int], sockets: Optional[int], opens: int
) -> None:
    caps = SocketCaps(Clock())
    assert caps.user_cap(TIERS[tier], share) == sockets
    assert caps.user_opens(TIERS[tier]) == opens


def test_settings_replace_the_automatic_share() -> None:
    caps = SocketCaps(Clock(), max_user_sockets=3, user_socket_opens=7)
    assert caps.user_cap(TIERS["pro"], None) == 3
    assert caps.user_opens(TIERS["ephemeral"]) == 7


def test_opens_refill_at_the_rate_and_never_past_it() -> None:
    clock = Clock()
    caps, free = SocketCaps(clock), TIERS["free"]
    for _ in range(24):
        caps.check_user("t", "u", free, None)
        caps.opened("t", "u", free)
        caps.closed("t", "u")
    with pytest.raises(ApiError) as refused:
        caps.check_user("t", "u", free, None)
    assert refused.value.code == 429 and refused.value.retry_after == 3  # 2.5 s per open
    clock.now += 2.5
    caps.check_user("t", "u", free, None)
    clock.now += 3600  # an hour idle refills to 24, not more
    for _ in range(24):
        caps.opened("t", "u", free)
        caps.closed("t", "u")
    with pytest.raises(ApiError):
        caps.check_user("t", "u", free, None)


def test_a_flood_of_users_keeps_only_the_buckets_that_matter() -> None:
    clock = Clock()
    caps, free = SocketCaps(clock), TIERS["free"]
    caps.opened("t", "holder", free)  # still has a socket: kept
    for _ in range(20):
        caps.opened("t", "cycler", free)  # a drained bucket: kept
        caps.closed("t", "cycler")
    clock.now += 1
    for i in range(3 * SWEEP_AT):
        caps.opened("t", f"u{i}", free)
        caps.closed("t", f"u{i}")
        clock.now += 0.001  # 30 s in all: the cycler has not refilled (50 s)
    assert len(caps._buckets) < 2 * SWEEP_AT
    assert ("t", "holder") in caps._buckets and ("t", "cycler") in caps._buckets
    assert caps.per_user == {("t", "holder"): 1} and caps.per_tenant["t"] == 1
