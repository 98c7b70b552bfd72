"""Participants on the local RealtimeKit server and their signed, expiring tokens."""

from __future__ import annotations

import uuid
from typing import Any, Dict

import jwt
import pytest

from .conftest import GUEST, HOST, KEY, OTHER_KEY, Rtk, cf_error, iso


def test_participant_lifecycle(rtk: Rtk) -> None:
    m = rtk.meeting(title="calls")
    base = f"/meetings/{m['id']}/participants"
    p = rtk.participant(
        m["id"], name="Ada", picture="https://example.com/ada.png", custom_participant_id="u-1"
    )
    uuid.UUID(p["id"])
    assert (p["name"], p["preset_name"], p["custom_participant_id"]) == ("Ada", HOST, "u-1")
    assert p["picture"] == "https://example.com/ada.png"
    assert isinstance(p["token"], str) and p["token"].count(".") == 2
    iso(p["created_at"])

    got = rtk.ok("GET", f"{base}/{p['id']}")["data"]
    assert "token" not in got
    assert got == {k: v for k, v in p.items() if k != "token"}

    q = rtk.participant(m["id"], preset_name=GUEST)
    assert q["name"] is None and q["custom_participant_id"] == q["id"]

    listing = rtk.ok("GET", base)
    assert [x["id"] for x in listing["data"]] == [p["id"], q["id"]]
    assert listing["paging"] == {"total_count": 2, "start_offset": 1, "end_offset": 2}
    second = rtk.ok("GET", base, params={"per_page": 1, "page_no": 2})
    assert [x["id"] for x in second["data"]] == [q["id"]]
    assert [x["id"] for x in rtk.ok("GET", base, params={"search": "ada"})["data"]] == [p["id"]]
    assert [x["id"] for x in rtk.ok("GET", base, params={"search": "u-1"})["data"]] == [p["id"]]

    edited = rtk.ok("PATCH", f"{base}/{p['id']}", json={"name": "Ada L.", "preset_name": GUEST})
    data = edited["data"]
    assert data["name"] == "Ada L." and data["preset_name"] == GUEST
    assert data["custom_participant_id"] == "u-1" and data["token"] != p["token"]
    assert rtk.verify(data["token"])["preset_name"] == GUEST

    fresh_token = rtk.ok("POST", f"{base}/{p['id']}/token")["data"]["token"]
    assert fresh_token not in (p["token"], data["token"])
    assert rtk.verify(fresh_token)["valid"] is True

    deleted = rtk.ok("DELETE", f"{base}/{p['id']}")["data"]
    assert deleted["id"] == p["id"] and "token" not in deleted
    cf_error(rtk.call("GET", f"{base}/{p['id']}"), 404)
    cf_error(rtk.call("DELETE", f"{base}/{p['id']}"), 404)
    cf_error(rtk.call("POST", f"{base}/{p['id']}/token"), 404)
    assert rtk.verify(fresh_token) == {
        "valid": False,
        "reason": "the token's participant no longer exists",
    }
    assert [x["id"] for x in rtk.ok("GET", base)["data"]] == [q["id"]]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "preset_name"),
        ({"preset_name": None}, "preset_name"),
        ({"preset_name": 3}, "preset_name"),
        ({"preset_name": "admin"}, HOST),
        ({"preset_name": HOST, "name": 7}, '"name"'),
        ({"preset_name": HOST, "name": "n" * 257}, '"name"'),
        ({"preset_name": HOST, "picture": "ftp://x"}, '"picture"'),
        ({"preset_name": HOST, "picture": ["https://x"]}, '"picture"'),
        ({"preset_name": HOST, "custom_participant_id": 1}, "custom_participant_id"),
        ({"preset_name": HOST, "custom_participant_id": ""}, "custom_participant_id"),
        ({"preset_name": HOST, "role": "x"}, '"role"'),
    ],
)
def test_participant_input_is_checked(rtk: Rtk, body: Dict[str, Any], needle: str) -> None:
    m = rtk.meeting()
    err = cf_error(rtk.call("POST", f"/meetings/{m['id']}/participants", json=body), 400)
    assert needle in err["message"]


def test_participant_update_input_is_checked(rtk: Rtk) -> None:
    m = rtk.meeting()
    p = rtk.participant(m["id"])
    path = f"/meetings/{m['id']}/participants/{p['id']}"
    assert "preset" in cf_error(rtk.call("PATCH", path, json={"preset_name": "x"}), 400)["message"]
    msg = cf_error(rtk.call("PATCH", path, json={"custom_participant_id": "x"}), 400)["message"]
    assert "custom_participant_id" in msg


def test_inactive_meeting_refuses_participants_and_tokens(rtk: Rtk) -> None:
    m = rtk.meeting(status="INACTIVE")
    err = cf_error(
        rtk.call("POST", f"/meetings/{m['id']}/participants", json={"preset_name": HOST}), 400
    )
    assert "INACTIVE" in err["message"]
    rtk.ok("PATCH", f"/meetings/{m['id']}", json={"status": "ACTIVE"})
    p = rtk.participant(m["id"])
    rtk.ok("PATCH", f"/meetings/{m['id']}", json={"status": "INACTIVE"})
    err = cf_error(rtk.call("POST", f"/meetings/{m['id']}/participants/{p['id']}/token"), 400)
    assert "INACTIVE" in err["message"]


# -- tokens ------------------------------------------------------------------------------------
def test_participant_token_is_a_signed_verifiable_jwt(server: Any, rtk: Rtk) -> None:
    m = rtk.meeting()
    p = rtk.participant(m["id"], name="Grace")
    claims = jwt.decode(p["token"], options={"verify_signature": False})
    assert claims["typ"] == "rtk" and claims["sub"] == p["id"]
    assert claims["meeting_id"] == m["id"] and claims["preset_name"] == HOST
    assert claims["name"] == "Grace"

    info = rtk.verify(p["token"])
    assert info["valid"] is True
    assert (info["participant_id"], info["meeting_id"], info["name"]) == (p["id"], m["id"], "Grace")
    iso(info["expires_at"])

    head, payload, sig = p["token"].split(".")
    forged = f"{head}.{payload}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    assert rtk.verify(forged)["valid"] is False
    assert rtk.verify("not-a-token")["valid"] is False
    other = Rtk(server.base_url, OTHER_KEY)
    assert other.verify(p["token"]) == {"valid": False, "reason": "token belongs to another tenant"}
    cf_error(rtk.call("POST", "/_local/verify-token", json={}), 400)


def test_tokens_expire_on_the_server_clock(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=0)
    api = Rtk(srv.base_url, KEY)
    p = api.participant(api.meeting()["id"])
    srv.advance_clock(23 * 3600)
    assert api.verify(p["token"])["valid"] is True
    srv.advance_clock(2 * 3600)
    assert api.verify(p["token"]) == {"valid": False, "reason": "token expired"}
