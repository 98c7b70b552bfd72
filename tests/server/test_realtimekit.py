"""Video/voice REST surface under /edge/realtimekit/* (spec: Video and Voice (RealtimeKit))."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ._wire import Api, assert_envelope
from .conftest import make_server

RA = "krtk_a_1122334455"
RB = "krtk_b_5544332211"


@pytest.fixture(scope="module")
def rtk() -> Iterator[Any]:
    srv = make_server(keys=[RA, RB], provision=False)
    srv.start()
    try:
        for key in (RA, RB):  # realtime provisioned; video is lazily provisioned on first use
            assert Api(srv.base_url, key).provision().status_code in (200, 201)
        yield srv
    finally:
        srv.stop()


def _call(api: Api, method: str, path: str, **kw: Any) -> requests.Response:
    return api.request(method, "/edge/realtimekit" + path, params={"key": api.key}, **kw)


def _cf_ok(r: requests.Response) -> Any:
    """Cloudflare's success envelope: {"success": true, "data": ...}."""
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    body = r.json()
    assert body["success"] is True, body
    return body["data"]


def _cf_error(r: requests.Response, code: int) -> None:
    assert r.status_code == code, (r.status_code, r.text[:300])
    body = r.json()
    assert body.get("success") is False, body


def _meeting(api: Api, title: str = "standup") -> str:
    data = _cf_ok(_call(api, "POST", "/meetings", json={"title": title}))
    assert isinstance(data["id"], str) and data["id"]
    return str(data["id"])


def _resolve(api: Api, meeting_id: str) -> dict:
    """The spec's loop: 5 attempts, 200 ms apart, is sufficient."""
    for _ in range(5):
        r = _call(api, "GET", f"/meetings/{meeting_id}")
        if r.status_code == 200:
            return dict(_cf_ok(r))
        _cf_error(r, 404)  # ResourceNotFound while eventually consistent
        time.sleep(0.2)
    raise AssertionError("meeting did not resolve within the spec's 5 x 200 ms loop")


def test_meeting_lifecycle_and_participant_token(rtk: Any) -> None:
    api = Api(rtk.base_url, RA)
    meeting_id = _meeting(api)
    got = _resolve(api, meeting_id)
    assert got["id"] == meeting_id and got["title"] == "standup"

    presets = _cf_ok(_call(api, "GET", "/presets"))
    assert isinstance(presets, list) and presets, presets
    preset = presets[0]["name"]

    part = _cf_ok(
        _call(
            api,
            "POST",
            f"/meetings/{meeting_id}/participants",
            json={"name": "Alice", "preset_name": preset, "custom_participant_id": "alice"},
        )
    )
    assert isinstance(part["token"], str) and part["token"]

    updated = _cf_ok(_call(api, "PUT", f"/meetings/{meeting_id}", json={"title": "retro"}))
    assert updated["title"] == "retro"
    assert _resolve(api, meeting_id)["title"] == "retro"


def test_bearer_session_works(rtk: Any) -> None:
    api = Api(rtk.base_url, RA)
    r = api.request(
        "GET",
        "/edge/realtimekit/presets",
        headers={"Authorization": f"Bearer {api.session()}"},
    )
    assert _cf_ok(r)


def test_unknown_meeting_is_not_found(rtk: Any) -> None:
    api = Api(rtk.base_url, RA)
    _cf_error(_call(api, "GET", "/meetings/00000000-0000-0000-0000-000000000000"), 404)


def test_meetings_are_per_tenant(rtk: Any) -> None:
    a, b = Api(rtk.base_url, RA), Api(rtk.base_url, RB)
    meeting_id = _meeting(a, "private")
    _resolve(a, meeting_id)
    _cf_error(_call(b, "GET", f"/meetings/{meeting_id}"), 404)
    r = _call(b, "POST", f"/meetings/{meeting_id}/participants", json={
        "name": "Mallory", "preset_name": "group_call_participant",
        "custom_participant_id": "m"})  # fmt: skip
    assert r.status_code == 404, r.text


def test_credentials_are_required(rtk: Any) -> None:
    r = requests.get(f"{rtk.base_url}/edge/realtimekit/presets", timeout=5)
    assert_envelope(r, 401)
    r = requests.get(f"{rtk.base_url}/edge/realtimekit/presets", params={"key": "nope"}, timeout=5)
    assert_envelope(r, 401)


def test_deleting_realtime_drops_the_video_app(rtk: Any) -> None:
    api = Api(rtk.base_url, RB)
    meeting_id = _meeting(api, "doomed")
    _resolve(api, meeting_id)
    assert api.deprovision().status_code in (200, 204)
    assert_envelope(_call(api, "GET", "/presets"), 403, "FAILED_PRECONDITION")
    assert api.provision().status_code in (200, 201)
    _cf_error(_call(api, "GET", f"/meetings/{meeting_id}"), 404)
