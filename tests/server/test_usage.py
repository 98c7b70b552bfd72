"""A count that can't be written fails the action it counts, and is written later.

(The crash itself, ``kill -9`` of a child server, is in
``tests/adversarial/test_usage_durable.py``.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, List

from cohrt_sync.server.limits import MINT

from ._wire import Api
from .conftest import make_server

KEY, OTHER = "kt_usage_0", "kt_usage_1"


def _mints_on_disk(data: Path, key: str) -> int:
    tenant = "t_" + hashlib.sha256(key.encode()).hexdigest()[:20]
    with sqlite3.connect(str(data / "server.sqlite3")) as db:
        (counters,) = db.execute("SELECT counters FROM tenants WHERE id = ?", (tenant,)).fetchone()
    return int(json.loads(counters).get("life:" + MINT, 0))


def test_a_count_not_on_disk_is_not_answered_and_is_retried(tmp_path: Path) -> None:
    srv = make_server(keys=[KEY, OTHER], tier="ephemeral", data_dir=tmp_path)
    srv.start()
    try:
        state = srv._core.state  # fault injection: the state database fails once
        real = state.save_many
        failures: List[int] = [1]

        async def flaky(tenants: Any) -> None:
            if failures:
                failures.pop()
                raise sqlite3.OperationalError("disk I/O error")
            await real(tenants)

        state.save_many = flaky
        assert Api(srv.base_url, KEY).mint_resp({"user_id": "a"}).status_code == 500
        # The next write, whoever's charge it carries, writes the failed count too
        # (it stays counted: a count errs on the side of the cap).
        assert Api(srv.base_url, OTHER).mint_resp({"user_id": "b"}).status_code == 200
        assert _mints_on_disk(tmp_path, KEY) == 1
        assert _mints_on_disk(tmp_path, OTHER) == 1
    finally:
        srv.stop()
