"""The RealtimeKit proxy's own answers: credentials, provisioning, presets, routing, odd input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import GUEST, HOST, KEY, Rtk, cf_error, google_error, iso


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
        iso(preset["created_at"])
    assert body["paging"] == {
        "total_count": len(names),
        "start_offset": 1,
        "end_offset": len(names),
    }
    page = rtk.ok("GET", "/presets", params={"per_page": 2, "page_no": 2})
    assert [p["name"] for p in page["data"]] == names[2:4]
    assert page["paging"] == {"total_count": len(names), "start_offset": 3, "end_offset": 4}


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
