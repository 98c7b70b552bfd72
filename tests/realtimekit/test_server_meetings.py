"""Meetings on the local RealtimeKit server: fields, validation, updates, listing, read delay."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict

import pytest

from .conftest import HOST, KEY, OTHER_KEY, Rtk, cf_error, iso


def test_create_meeting_defaults_and_fields(rtk: Rtk) -> None:
    m = rtk.meeting()
    uuid.UUID(m["id"])
    assert m["title"] is None and m["status"] == "ACTIVE"
    for flag in ("record_on_start", "live_stream_on_start", "persist_chat", "summarize_on_end"):
        assert m[flag] is False
    assert m["session_keep_alive_time_in_secs"] == 60
    assert m["ai_config"]["transcription"]["language"] == "en-US"
    assert iso(m["created_at"]) == iso(m["updated_at"])

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
    assert iso(data["updated_at"]) >= iso(m["updated_at"])
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
