"""A RealtimeKit app's life on the server: deprovisioning, restarts, tiers, its storage thread."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .conftest import HOST, KEY, Rtk, cf_error, google_error


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


def test_the_storage_thread_stops_with_the_server(make_server: Any) -> None:
    def rtk_threads() -> int:
        return sum(t.name.startswith("cohrt-sync-rtk") for t in threading.enumerate())

    before = rtk_threads()
    srv = make_server(rtk_delay_ms=0)
    Rtk(srv.base_url, KEY).meeting()
    assert rtk_threads() == before + 1
    srv.stop()
    assert rtk_threads() == before
