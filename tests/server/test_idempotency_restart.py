"""Idempotency-Key across a restart.

A persisted publish stores its key in the same transaction as its row, so a
client that retries after the server crashed or restarted gets the first
answer back instead of a duplicate message.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Dict, List

import requests

from cohrt_sync.server import LocalServer

from ._wire import Api

KEY = "kidem_0c1d2e3f4a5b6c7d"


def _publish(
    srv: LocalServer, channel: str, data: Any, idem: str, persist: bool = True
) -> requests.Response:
    api = Api(srv.base_url, KEY)
    return api.publish(channel, data, persist=persist, headers={"Idempotency-Key": idem})


def _rows(srv: LocalServer, channel: str) -> List[Dict[str, Any]]:
    query = "SELECT id, data FROM realtime_messages WHERE channel = ?"
    return Api(srv.base_url, KEY).sql_rows(query, [channel])


def test_a_retry_after_a_restart_replays_the_first_answer(tmp_path: Path) -> None:
    channel = "idem:" + uuid.uuid4().hex[:8]
    idem = "retry-" + uuid.uuid4().hex
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        first = _publish(srv, channel, {"n": 1}, idem)
        assert first.status_code == 200, first.text
        assert "Idempotent-Replayed" not in first.headers
        srv.restart()
        again = _publish(srv, channel, {"n": 1}, idem)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert [r["id"] for r in _rows(srv, channel)] == [first.json()["id"]]
        # Replayed once from the database, then from memory: still one row.
        third = _publish(srv, channel, {"n": 1}, idem)
        assert third.json() == first.json() and third.headers.get("Idempotent-Replayed") == "true"
        assert len(_rows(srv, channel)) == 1


def test_a_stored_key_expires_after_24_hours(tmp_path: Path) -> None:
    channel = "idem:" + uuid.uuid4().hex[:8]
    idem = "old-" + uuid.uuid4().hex
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        first = _publish(srv, channel, {"n": 1}, idem).json()
        srv.restart()
        srv.advance_clock(24 * 3600 + 5)
        later = _publish(srv, channel, {"n": 1}, idem)
        assert later.status_code == 200 and "Idempotent-Replayed" not in later.headers
        assert later.json()["id"] != first["id"]
        assert len(_rows(srv, channel)) == 2


def test_keys_of_ephemeral_publishes_live_in_memory_only(tmp_path: Path) -> None:
    """The documented window: ``persist: false`` has no row to store its key with."""
    channel = "idem:" + uuid.uuid4().hex[:8]
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        eph = _publish(srv, channel, {"typing": True}, "eph-key", persist=False)
        assert eph.status_code == 200 and "id" not in eph.json()
        srv.restart()
        assert (
            "Idempotent-Replayed" not in _publish(srv, channel, 1, "eph-key", persist=False).headers
        )


def test_a_key_that_is_not_utf8_is_kept_as_its_bytes(tmp_path: Path) -> None:
    """Header bytes that are not UTF-8 (schemathesis sent b"\\x90") once gave 500."""
    channel = "idem:" + uuid.uuid4().hex[:8]
    idem = b"\x90raw-" + uuid.uuid4().hex.encode()
    with LocalServer([KEY], provision=True, data_dir=tmp_path) as srv:
        first = _publish(srv, channel, {"n": 1}, idem)  # type: ignore[arg-type]
        assert first.status_code == 200, first.text
        srv.restart()
        again = _publish(srv, channel, {"n": 1}, idem)  # type: ignore[arg-type]
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert len(_rows(srv, channel)) == 1
