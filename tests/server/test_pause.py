"""Tiers per key, accounts' shared buckets and what a pause does (docs/limits.md)."""

from __future__ import annotations

import struct
from typing import Any, Tuple

import requests
import websocket

from cohrt_sync.server.limits import PAUSE_CLOSE_CODE

from ._wire import Api, Sock, uniq
from .conftest import make_server


def pause_by_participants(base_url: str, key: str) -> None:
    """Spend an ephemeral tenant's 10 lifetime participant tokens; the 11th pauses it."""
    auth = {"Authorization": f"Bearer {key}"}
    rtk = base_url + "/edge/realtimekit/meetings"
    meeting = requests.post(rtk, json={}, headers=auth, timeout=5).json()["data"]["id"]
    codes = [
        requests.post(
            f"{rtk}/{meeting}/participants",
            json={"preset_name": "group_call_host"},
            headers=auth,
            timeout=5,
        ).status_code
        for _ in range(11)
    ]
    assert codes == [201] * 10 + [403], codes


def history_status(base_url: str, key: str) -> int:
    return requests.get(
        base_url + "/edge/realtime/history",
        params={"channel": "c"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    ).status_code


def _close_frame(sock: Sock, timeout: float = 5) -> Tuple[int, str]:
    sock.ws.settimeout(timeout)
    while True:
        opcode, frame = sock.ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0], frame.data[2:].decode("utf-8")


def test_open_sockets_are_closed_when_the_tenant_pauses() -> None:
    key, other = "kpause_0", "kpause_1"
    with make_server(keys=[key, other], tier="ephemeral", rtk_delay_ms=0) as srv:
        ch = uniq()
        mine = Sock(srv.base_url, Api(srv.base_url, key).token("a"), ch)
        theirs = Sock(srv.base_url, Api(srv.base_url, other).token("b"), ch)
        try:
            pause_by_participants(srv.base_url, key)
            code, reason = _close_frame(mine)
            assert code == PAUSE_CLOSE_CODE == 4003
            assert reason.startswith("tenant paused: "), reason
            assert "participant tokens" in reason
            # another tenant on the same channel name keeps its socket
            theirs.publish({"still": "here"})
        finally:
            mine.close()
            theirs.close()


def test_a_key_runs_at_its_own_tier_and_others_at_the_default() -> None:
    tiers = {"kt_free": "free"}
    with make_server(keys=["kt_eph", "kt_free"], tier="ephemeral", tiers=tiers) as srv:
        eph, free = Api(srv.base_url, "kt_eph"), Api(srv.base_url, "kt_free")
        assert [eph.mint_resp({"user_id": "u"}).status_code for _ in range(6)][-1] == 429
        assert [free.mint_resp({"user_id": "u"}).status_code for _ in range(6)] == [200] * 6
        listed = free.request("GET", "/api/resources", headers={"Authorization": "Bearer kt_free"})
        assert listed.json()["tier"] == "free"


def test_keys_of_one_account_share_the_per_minute_bucket() -> None:
    keys = ["ka_1", "ka_2", "ka_solo"]
    with make_server(keys=keys, tier="free", accounts={"acme": keys[:2]}) as srv:
        one, two, solo = (Api(srv.base_url, k) for k in keys)
        assert all(one.mint_resp({"user_id": "u"}).status_code == 200 for _ in range(20))
        codes = [two.mint_resp({"user_id": "u"}).status_code for _ in range(11)]
        assert codes == [200] * 10 + [429]  # 30 mints a minute for the account
        assert solo.mint_resp({"user_id": "u"}).status_code == 200
        srv.advance_clock(61)
        assert one.mint_resp({"user_id": "u"}).status_code == 200


def test_a_claimed_tier_is_never_held_paused_by_ephemeral_caps(tmp_path: Any) -> None:
    key = "kclaim_0"
    with make_server(keys=[key], tier="ephemeral", rtk_delay_ms=0, data_dir=tmp_path) as srv:
        pause_by_participants(srv.base_url, key)
        assert history_status(srv.base_url, key) == 403
    with make_server(keys=[key], tier="ephemeral", data_dir=tmp_path) as srv:
        assert history_status(srv.base_url, key) == 403  # still paused after a restart
    with make_server(keys=[key], tiers={key: "free"}, data_dir=tmp_path) as srv:
        assert history_status(srv.base_url, key) == 200
    # The tier is stored as the key's claim: a later start without one keeps it.
    with make_server(keys=[key], tier="ephemeral", data_dir=tmp_path) as srv:
        assert history_status(srv.base_url, key) == 200
