"""Conformance of the local RealtimeKit emulation, over plain HTTP."""

from __future__ import annotations

import datetime
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict

import jwt
import pytest

from .conftest import GUEST, HOST, KEY, OTHER_KEY, Rtk, cf_error, google_error


def _iso(value: str) -> datetime.datetime:
    assert value.endswith("Z"), value
    return datetime.datetime.fromisoformat(value[:-1] + "+00:00")


# -- auth and the proxy's own refusals ---------------------------------------------------------
def test_missing_and_bad_credentials_use_the_proxy_envelope(rtk: Rtk) -> None:
    google_error(rtk.call("GET", "/meetings", key=None), 401)
    google_error(rtk.call("GET", "/meetings", key="nope"), 401)
    google_error(rtk.call("POST", "/meetings", json={}, key=None), 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/meetings"),
        ("PATCH", "/meetings/m"),
        ("PUT", "/meetings/m"),
        ("POST", "/meetings/m/participants"),
        ("PATCH", "/meetings/m/participants/p"),
        ("POST", "/meetings/m/participants/p/token"),
        ("POST", "/_local/verify-token"),
    ],
)
def test_credentials_are_checked_before_the_body(rtk: Rtk, method: str, path: str) -> None:
    google_error(rtk.call(method, path, data=b"{not json", key=None), 401)


def test_edge_session_bearer_works(server: Any, rtk: Rtk) -> None:
    token = rtk.session.post(server.base_url + "/edge/session", params={"key": KEY}).json()["token"]
    r = rtk.session.get(rtk.base + "/presets", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


def test_realtime_must_be_provisioned(server: Any) -> None:
    key = "k_rtk_unprovisioned"
    server.add_key(key, provision=False)
    err = google_error(Rtk(server.base_url, key).call("GET", "/presets"), 403)
    assert "provision" in err["message"]


# -- presets ----------------------------------------------------------------------------------
def test_presets_list_a_host_and_a_participant(rtk: Rtk) -> None:
    body = rtk.ok("GET", "/presets")
    names = [p["name"] for p in body["data"]]
    assert HOST in names and GUEST in names
    for preset in body["data"]:
        uuid.UUID(preset["id"])
        _iso(preset["created_at"])
    assert body["paging"] == {
        "total_count": len(names),
        "start_offset": 1,
        "end_offset": len(names),
    }
    page = rtk.ok("GET", "/presets", params={"per_page": 2, "page_no": 2})
    assert [p["name"] for p in page["data"]] == names[2:4]
    assert page["paging"] == {"total_count": len(names), "start_offset": 3, "end_offset": 4}


# -- meetings ---------------------------------------------------------------------------------
def test_create_meeting_defaults_and_fields(rtk: Rtk) -> None:
    m = rtk.meeting()
    uuid.UUID(m["id"])
    assert m["title"] is None and m["status"] == "ACTIVE"
    for flag in ("record_on_start", "live_stream_on_start", "persist_chat", "summarize_on_end"):
        assert m[flag] is False
    assert m["session_keep_alive_time_in_secs"] == 60
    assert m["ai_config"]["transcription"]["language"] == "en-US"
    assert _iso(m["created_at"]) == _iso(m["updated_at"])

    full = rtk.meeting(
        title="Standup",
        status="INACTIVE",
        record_on_start=True,
        live_stream_on_start=None,
        persist_chat=True,
        summarize_on_end=True,
        session_keep_alive_time_in_secs=120,
        ai_config={"summarization": {"summary_type": "daily_standup", "word_limit": 200}},
    )
    assert full["title"] == "Standup" and full["status"] == "INACTIVE"
    assert full["record_on_start"] and full["persist_chat"] and full["summarize_on_end"]
    assert full["live_stream_on_start"] is False
    assert full["session_keep_alive_time_in_secs"] == 120
    summ = full["ai_config"]["summarization"]
    assert summ == {"summary_type": "daily_standup", "text_format": "markdown", "word_limit": 200}
    assert rtk.ok("GET", f"/meetings/{full['id']}")["data"] == full


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"title": 5}, '"title"'),
        ({"title": "x" * 1025}, '"title"'),
        ({"status": "OPEN"}, '"status"'),
        ({"status": None}, '"status"'),
        ({"record_on_start": "yes"}, '"record_on_start"'),
        ({"persist_chat": None}, '"persist_chat"'),
        ({"summarize_on_end": 1}, '"summarize_on_end"'),
        ({"session_keep_alive_time_in_secs": 10}, "session_keep_alive"),
        ({"session_keep_alive_time_in_secs": 601}, "session_keep_alive"),
        ({"session_keep_alive_time_in_secs": 60.5}, "session_keep_alive"),
        ({"session_keep_alive_time_in_secs": True}, "session_keep_alive"),
        ({"session_keep_alive_time_in_secs": "60"}, "session_keep_alive"),
        ({"ai_config": []}, '"ai_config"'),
        ({"ai_config": {"voice": {}}}, '"voice"'),
        ({"ai_config": {"summarization": {"summary_type": "poem"}}}, "summary_type"),
        ({"ai_config": {"summarization": {"word_limit": 5}}}, "word_limit"),
        ({"ai_config": {"transcription": {"language": "xx"}}}, "language"),
        ({"ai_config": {"transcription": {"keywords": [1]}}}, "keywords"),
        ({"ai_config": {"transcription": {"profanity_filter": "no"}}}, "profanity_filter"),
        ({"recording_config": "on"}, '"recording_config"'),
        ({"colour": "red"}, '"colour"'),
    ],
)
def test_meeting_input_is_checked(rtk: Rtk, body: Dict[str, Any], needle: str) -> None:
    err = cf_error(rtk.call("POST", "/meetings", json=body), 400)
    assert err["code"] == 400
    assert needle in err["message"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"title"', "JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"title": NaN}', "not valid JSON"),
        # The shared JSON parser may refuse these itself; either way a clear 400.
        (b'{"session_keep_alive_time_in_secs": 1e999}', "out of range|not valid JSON"),
        (b'{"title": "\\ud800"}', "Unicode|not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400_not_500(rtk: Rtk, raw: bytes, needle: str) -> None:
    err = cf_error(rtk.call("POST", "/meetings", data=raw), 400)
    assert any(n in err["message"] for n in needle.split("|")), err


def test_unknown_meeting_is_resource_not_found(rtk: Rtk) -> None:
    missing = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/meetings/{missing}"),
        ("PATCH", f"/meetings/{missing}"),
        ("PUT", f"/meetings/{missing}"),
        ("GET", f"/meetings/{missing}/participants"),
        ("POST", f"/meetings/{missing}/participants"),
        ("GET", f"/meetings/{missing}/participants/{missing}"),
        ("POST", f"/meetings/{missing}/participants/{missing}/token"),
        ("GET", "/meetings/" + "x" * 5000),
    ]:
        err = cf_error(rtk.call(method, path, json={} if method != "GET" else None), 404)
        assert err["code"] == 404
        assert err["message"].startswith("ResourceNotFound"), (method, path, err)


def test_meetings_of_another_tenant_are_invisible(server: Any, rtk: Rtk) -> None:
    m = rtk.meeting(title="mine")
    other = Rtk(server.base_url, OTHER_KEY)
    cf_error(other.call("GET", f"/meetings/{m['id']}"), 404)
    cf_error(other.call("PATCH", f"/meetings/{m['id']}", json={"title": "theirs"}), 404)
    assert all(x["id"] != m["id"] for x in other.ok("GET", "/meetings")["data"])


def test_patch_updates_only_the_given_fields(server: Any, rtk: Rtk) -> None:
    m = rtk.meeting(title="before", persist_chat=True)
    same = rtk.ok("PATCH", f"/meetings/{m['id']}", json={})["data"]
    assert same == m
    updated = rtk.ok("PATCH", f"/meetings/{m['id']}", json={"title": "after", "status": "INACTIVE"})
    data = updated["data"]
    assert data["title"] == "after" and data["status"] == "INACTIVE"
    assert data["persist_chat"] is True and data["created_at"] == m["created_at"]
    assert _iso(data["updated_at"]) >= _iso(m["updated_at"])
    assert rtk.ok("GET", f"/meetings/{m['id']}")["data"] == data
    cleared = rtk.ok("PATCH", f"/meetings/{m['id']}", json={"title": None})["data"]
    assert cleared["title"] is None
    cf_error(rtk.call("PATCH", f"/meetings/{m['id']}", json={"status": "DONE"}), 400)


def test_put_replaces_every_field(rtk: Rtk) -> None:
    m = rtk.meeting(title="t", persist_chat=True, session_keep_alive_time_in_secs=300)
    replaced = rtk.ok("PUT", f"/meetings/{m['id']}", json={"title": "new"})["data"]
    assert replaced["title"] == "new"
    assert replaced["persist_chat"] is False
    assert replaced["session_keep_alive_time_in_secs"] == 60
    assert replaced["id"] == m["id"] and replaced["created_at"] == m["created_at"]
    # A client may PUT back what it read, read-only fields included.
    echoed = rtk.ok("PUT", f"/meetings/{m['id']}", json={**replaced, "record_on_start": True})
    assert echoed["data"]["record_on_start"] is True
    err = cf_error(rtk.call("PUT", f"/meetings/{m['id']}", json={"id": str(uuid.uuid4())}), 400)
    assert '"id"' in err["message"]


def test_list_meetings_pages_searches_and_filters(fresh: Rtk) -> None:
    empty = fresh.ok("GET", "/meetings")
    assert empty["data"] == [] and empty["paging"] == {
        "total_count": 0,
        "start_offset": 0,
        "end_offset": 0,
    }
    made = [
        fresh.meeting(title=f"Room {i}", status="INACTIVE" if i == 4 else "ACTIVE")
        for i in range(5)
    ]
    seen = []
    for page_no, (start, end) in enumerate([(1, 2), (3, 4), (5, 5)], start=1):
        page = fresh.ok("GET", "/meetings", params={"page_no": page_no, "per_page": 2})
        assert page["paging"] == {"total_count": 5, "start_offset": start, "end_offset": end}
        seen += [m["id"] for m in page["data"]]
    assert seen == [m["id"] for m in made]
    past = fresh.ok("GET", "/meetings", params={"page_no": 4, "per_page": 2})
    assert past["data"] == [] and past["paging"]["total_count"] == 5

    found = fresh.ok("GET", "/meetings", params={"search": "room 3"})["data"]
    assert [m["id"] for m in found] == [made[3]["id"]]
    by_id = fresh.ok("GET", "/meetings", params={"search": made[1]["id"]})["data"]
    assert [m["id"] for m in by_id] == [made[1]["id"]]
    assert fresh.ok("GET", "/meetings", params={"search": "%"})["data"] == []
    inactive = fresh.ok("GET", "/meetings", params={"status": "INACTIVE"})
    assert [m["id"] for m in inactive["data"]] == [made[4]["id"]]
    assert inactive["paging"]["total_count"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"page_no": "0"},
        {"page_no": "-1"},
        {"page_no": "two"},
        {"page_no": "1.5"},
        {"per_page": "0"},
        {"per_page": "101"},
        {"per_page": "9" * 40},
        {"status": "OPEN"},
        {"search": "s" * 300},
    ],
)
def test_bad_paging_parameters_are_400(rtk: Rtk, params: Dict[str, str]) -> None:
    err = cf_error(rtk.call("GET", "/meetings", params=params), 400)
    assert next(iter(params)) in err["message"]


# -- participants ----------------------------------------------------------------------------
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
    _iso(p["created_at"])

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
    _iso(info["expires_at"])

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


# -- routing -------------------------------------------------------------------------------------
def test_unknown_paths_and_methods(rtk: Rtk) -> None:
    m = rtk.meeting()
    r = rtk.call("DELETE", f"/meetings/{m['id']}")
    err = cf_error(r, 405)
    assert "GET, PATCH, PUT" in err["message"] and r.headers["Allow"] == "GET, PATCH, PUT"
    cf_error(rtk.call("GET", f"/meetings/{m['id']}/participants/x/token"), 405)
    cf_error(rtk.call("PUT", "/presets"), 405)
    for path in ("/sessions", "", "/meetings/", "/meetings/a/b/c/d/e"):
        err = cf_error(rtk.call("GET", path), 404)
        assert err["code"] == 7000
    # The proxy authenticates before it routes.
    google_error(rtk.call("GET", "/sessions", key=None), 401)


def test_direct_sql_cannot_see_realtimekit_tables(server: Any, rtk: Rtk) -> None:
    rtk.meeting(title="secret")
    r = rtk.session.post(
        server.base_url + "/edge/database",
        params={"key": KEY},
        json={"query": "SELECT name FROM sqlite_master"},
    )
    assert r.status_code == 200, r.text
    names = {row["name"] for row in r.json()["results"]}
    assert not names & {"meetings", "participants"}


# -- eventual consistency ------------------------------------------------------------------------
def test_new_meeting_answers_not_found_until_the_delay_passes(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=300)
    api = Rtk(srv.base_url, KEY)
    m = api.meeting(title="later")
    for method, path in [
        ("GET", f"/meetings/{m['id']}"),
        ("GET", f"/meetings/{m['id']}/participants"),
        ("POST", f"/meetings/{m['id']}/participants"),
    ]:
        body = {"preset_name": HOST} if method == "POST" else None
        err = cf_error(api.call(method, path, json=body), 404)
        assert err["message"].startswith("ResourceNotFound")
    # Writes reach the primary at once; the list shows it too.
    assert (
        api.ok("PATCH", f"/meetings/{m['id']}", json={"title": "soon"})["data"]["title"] == "soon"
    )
    assert [x["id"] for x in api.ok("GET", "/meetings")["data"]] == [m["id"]]
    srv.advance_clock(0.2)
    cf_error(api.call("GET", f"/meetings/{m['id']}"), 404)
    srv.advance_clock(0.11)
    assert api.ok("GET", f"/meetings/{m['id']}")["data"]["title"] == "soon"
    api.participant(m["id"])


# -- lifecycle ---------------------------------------------------------------------------------
def test_deleting_realtime_removes_the_app_and_its_meetings(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=0)
    api = Rtk(srv.base_url, KEY)
    m = api.meeting(title="doomed")
    p = api.participant(m["id"])
    api.deprovision()
    google_error(api.call("GET", "/meetings"), 403)
    api.provision()
    assert api.ok("GET", "/meetings")["data"] == []
    cf_error(api.call("GET", f"/meetings/{m['id']}"), 404)
    assert api.verify(p["token"])["valid"] is False
    db = sqlite3.connect(str(srv.data_dir / "realtimekit" / "realtimekit.sqlite3"))
    try:
        assert db.execute("SELECT count(*) FROM meetings").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM participants").fetchone()[0] == 0
    finally:
        db.close()
    # A new app is created lazily for the next meeting.
    again = api.meeting(title="reborn")
    assert [x["id"] for x in api.ok("GET", "/meetings")["data"]] == [again["id"]]


def test_meetings_and_tokens_survive_a_restart(make_server: Any, tmp_path: Any) -> None:
    srv = make_server(rtk_delay_ms=0, data_dir=tmp_path / "data")
    api = Rtk(srv.base_url, KEY)
    m = api.meeting(title="durable")
    p = api.participant(m["id"], name="Lin")
    srv.restart()
    api = Rtk(srv.base_url, KEY)
    assert api.ok("GET", f"/meetings/{m['id']}")["data"] == m
    got = api.ok("GET", f"/meetings/{m['id']}/participants/{p['id']}")["data"]
    assert got["name"] == "Lin"
    assert api.verify(p["token"])["valid"] is True
    second = api.meeting(title="after restart")
    listed = [x["id"] for x in api.ok("GET", "/meetings")["data"]]
    assert listed == [m["id"], second["id"]]


def test_concurrent_first_meetings_share_one_app(fresh: Rtk) -> None:
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: fresh.meeting(title=f"c{i}"), range(16)))
    listing = fresh.ok("GET", "/meetings", params={"per_page": 100})
    assert listing["paging"]["total_count"] == 16
    assert {m["id"] for m in listing["data"]} == {m["id"] for m in made}


def test_ephemeral_tier_pauses_the_tenant_at_the_11th_participant_token(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=0, tier="ephemeral")
    api = Rtk(srv.base_url, KEY)
    m = api.meeting()
    for i in range(10):
        api.participant(m["id"], name=f"p{i}")
    err = google_error(
        api.call("POST", f"/meetings/{m['id']}/participants", json={"preset_name": HOST}), 403
    )
    assert err["status"] == "FAILED_PRECONDITION" and "participant tokens" in err["message"]
    err = google_error(api.call("GET", "/presets"), 403)
    assert "paused" in err["message"]


def test_server_never_answers_500_to_odd_input(rtk: Rtk) -> None:
    m = rtk.meeting()
    odd = [None, 0, -1, 1.5, True, "", "x" * 10_000, [], {}, {"a": [{"b": None}]}, "\u0000", "☃"]
    paths = [
        ("POST", "/meetings"),
        ("PATCH", f"/meetings/{m['id']}"),
        ("PUT", f"/meetings/{m['id']}"),
        ("POST", f"/meetings/{m['id']}/participants"),
    ]
    fields = ["title", "status", "ai_config", "name", "picture", "preset_name", "id"]
    for method, path in paths:
        for field in fields:
            for value in odd:
                r = rtk.call(method, path, json={field: value})
                assert r.status_code < 500, (method, path, field, value, r.text)
                assert r.json()["success"] in (True, False)
    for path in ("/meetings/%00", "/meetings/%ff%fe/participants", "/presets?page_no=%00"):
        r = rtk.session.get(rtk.base + path, params={"key": KEY})
        assert r.status_code < 500, (path, r.text)


def test_the_storage_thread_stops_with_the_server(make_server: Any) -> None:
    def rtk_threads() -> int:
        return sum(t.name.startswith("cohrt-sync-rtk") for t in threading.enumerate())

    before = rtk_threads()
    srv = make_server(rtk_delay_ms=0)
    Rtk(srv.base_url, KEY).meeting()
    assert rtk_threads() == before + 1
    srv.stop()
    assert rtk_threads() == before


def test_concurrent_patches_of_one_meeting_lose_nothing(rtk: Rtk) -> None:
    m = rtk.meeting()
    changes = [
        {"title": "t"},
        {"status": "INACTIVE"},
        {"record_on_start": True},
        {"live_stream_on_start": True},
        {"persist_chat": True},
        {"summarize_on_end": True},
        {"transcribe_on_end": True},
        {"session_keep_alive_time_in_secs": 600},
    ]
    with ThreadPoolExecutor(len(changes)) as pool:
        list(pool.map(lambda c: rtk.ok("PATCH", f"/meetings/{m['id']}", json=c), changes))
    final = rtk.ok("GET", f"/meetings/{m['id']}")["data"]
    for change in changes:
        for key, value in change.items():
            assert final[key] == value, (key, final)
