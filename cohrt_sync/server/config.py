"""The settings of one server (:class:`Config`) and the limits derived from them."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import attrs

from .directsql import SqlLimits


@attrs.define
class Config:
    """Settings of one server, and the one place their defaults are written.

    :class:`~cohrt_sync.server.LocalServer` takes the same names with these
    defaults, ``cohrt-sync serve`` builds its flags from them, and the tenant
    databases get their limits from :meth:`sql_limits`.
    """

    keys: List[str] = attrs.field(factory=list, repr=False)
    provision: bool = False
    data_dir: Optional[Path] = None
    tier: str = "unlimited"
    #: Key → the tier it runs at, stored as its claim (others keep theirs, or ``tier``).
    tiers: Dict[str, str] = attrs.field(factory=dict, repr=False)
    #: Account name → its keys, which share per-minute and monthly buckets.
    accounts: Dict[str, List[str]] = attrs.field(factory=dict, repr=False)
    max_payload: int = 65536
    session_ttl: int = 60
    live_ids: bool = True
    batch_commits: bool = True
    heartbeat: float = 25.0
    rtk_delay_ms: int = 300
    # Tenant database quota and direct-SQL bounds (see directsql.SqlLimits).
    max_db_size: int = 500_000_000
    sql_time_limit: float = 5.0
    sql_max_value: int = 2_000_000
    sql_max_length: int = 100_000
    sql_max_params: int = 100
    sql_max_rows: int = 100_000
    sql_max_result_bytes: int = 16 * 1024 * 1024

    # Connections and slow peers (connlimits.py, connguard.py, outbox.py); 0 means automatic.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 30.0
    send_timeout: float = 60.0
    max_connections: int = 0
    max_tenant_sockets: int = 0
    max_user_sockets: int = 0
    user_socket_opens: int = 0
    max_head_bytes: int = 32 << 10
    socket_queue_bytes: int = 4 << 20
    total_queue_bytes: int = 128 << 20
    #: Redis URL of the cluster this server is a node of (docs/cluster.md); None: alone.
    cluster: Optional[str] = None

    def check_tiers(self) -> None:
        """Refuse an unknown tier, or a key of ``tiers``/``accounts`` not in ``keys``."""
        # Here, not at the top: the limits module needs aiohttp, and this one
        # is read without it (the command line's flag defaults).
        from .limits import check_tier

        check_tier(self.tier)
        named = list(self.tiers) + [k for ks in self.accounts.values() for k in ks]
        if any(key not in self.keys for key in named):
            raise ValueError("every key of tiers and accounts must also be in keys")
        for tier in self.tiers.values():
            check_tier(tier)

    def sql_limits(self) -> SqlLimits:
        """The tenant database limits these settings name (validated)."""
        return SqlLimits(
            max_db_size=self.max_db_size,
            time_limit=self.sql_time_limit,
            max_value=self.sql_max_value,
            max_sql_length=self.sql_max_length,
            max_params=self.sql_max_params,
            max_rows=self.sql_max_rows,
            max_result_bytes=self.sql_max_result_bytes,
        )


__all__ = ["Config"]
