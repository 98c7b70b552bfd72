"""The connection cap and per-tenant socket share derived from the fd limit (no server)."""

from __future__ import annotations

import pytest

from cohrt_sync.server.config import Config
from cohrt_sync.server.connlimits import BACKLOG, ConnLimits, resolve_limits


def test_cap_leaves_room_for_own_files_bursts_and_refusals() -> None:
    limits = resolve_limits(Config(), 1024)
    reserve, refusal_slots = 1024 // 16, 1024 // 32
    cap = 1024 - reserve - 4 * BACKLOG - refusal_slots
    assert limits == ConnLimits(1024, cap, cap // 2, refusal_slots)


def test_max_connections_is_capped_by_the_fd_limit() -> None:
    allowed = resolve_limits(Config(), 1024).max_connections
    assert resolve_limits(Config(max_connections=100), 1024).max_connections == 100
    assert resolve_limits(Config(max_connections=10 * allowed), 1024).max_connections == allowed


def test_no_fd_limit_serves_the_setting_or_ten_thousand() -> None:
    assert resolve_limits(Config(), None) == ConnLimits(None, 10_000, 5_000, 64)
    assert resolve_limits(Config(max_connections=50), None).max_connections == 50


def test_tenant_share_is_the_setting_when_given() -> None:
    assert resolve_limits(Config(max_tenant_sockets=7), 1024).max_tenant_sockets == 7


def test_an_fd_limit_too_low_to_serve_is_refused() -> None:
    with pytest.raises(ValueError, match="too low"):
        resolve_limits(Config(), 150)


@pytest.mark.parametrize(
    "setting",
    [{"header_timeout": 0}, {"send_timeout": -1}, {"max_connections": -1}],
)
def test_settings_out_of_range_are_refused(setting: dict) -> None:
    with pytest.raises(ValueError):
        resolve_limits(Config(**setting), 1024)
