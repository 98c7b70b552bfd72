"""``cohrt-sync tenant``: an operator's changes to the tenants of a data dir.

They write only the operator's columns of ``server.sqlite3`` (see
:mod:`.state`) and bump its ``user_version``, so they are safe beside a server
running on the same dir, which re-reads those columns before its next tier or
pause decision.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Optional

from .limits import CLAIMED
from .state import key_digest, migrate

STATE_FILE = "server.sqlite3"


class NoSuchTenant(LookupError):
    """The data dir has no state, or no tenant with that key."""


def claim(data_dir: Path, key: str, tier: str, account: Optional[str] = None) -> None:
    """Run ``key``'s tenant at the claimed ``tier`` (free, plus or pro) from now on.

    A claimed tier has no ephemeral lifetime caps, so a pause they caused is
    lifted. With ``account``, the key also joins that account's buckets.
    """
    if tier not in CLAIMED:
        raise ValueError(f"a claim is for one of {', '.join(CLAIMED)}, not {tier!r}")
    if account is None:
        _update(data_dir, key, "tier = ?", tier)
    else:
        _update(data_dir, key, "tier = ?, account = ?", tier, account)


def unpause(data_dir: Path, key: str) -> None:
    """Lift the pause of ``key``'s tenant; its ephemeral lifetime caps count from zero.

    The server applies it (to a paused tenant only) when it next decides for
    that tenant, or when it starts.
    """
    _update(data_dir, key, "unpause_requests = unpause_requests + 1")


def _update(data_dir: Path, key: str, assignments: str, *params: Any) -> None:
    path = Path(data_dir) / STATE_FILE
    if not path.is_file():
        raise NoSuchTenant(f"no server state in {data_dir} (no {STATE_FILE})")
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        migrate(conn)
        with conn:
            cur = conn.execute(
                f"UPDATE tenants SET {assignments} WHERE key_hash = ?", (*params, key_digest(key))
            )
            if cur.rowcount == 0:
                raise NoSuchTenant(f"no tenant has that key in {data_dir}")
            # Tells a running server that the operator changed something (see state).
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version) + 1}")
    finally:
        conn.close()


__all__ = ["NoSuchTenant", "claim", "unpause"]
