"""Catch-up against history that breaks its contract: liveness with safety.

The client delivers every message it can prove right, once, in id order,
drops what it can prove wrong, reports each kind of problem once, and stays
live: a broken page is neither delivered as it came nor a reason to
reconnect again and again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Dict, List

import pytest

import cohrt_sync
from tests.hostile._server import HostileServer, json_response

from .conftest import Recorder, wait_until

#: A server's history handler gone wrong: (server, channel, after, limit) -> items.
Broken = Callable[[HostileServer, str, int, int], List[Dict[str, Any]]]

#: Rows stored while the client is away; more than a page, so each walk pages.
MISSED = 150


def _mine(h: HostileServer, channel: str) -> List[Dict[str, Any]]:
    return [r for r in h.rows if r["channel"] == channel]


def _after(h: HostileServer, channel: str, after: int) -> List[Dict[str, Any]]:
    return [r for r in _mine(h, channel) if r["id"] > after]


def _out_of_range(h: HostileServer, channel: str, after: int, limit: int) -> List[Dict]:
    rows = [dict(r) for r in _after(h, channel, after)[:limit]]
    for row in rows:
        if row["data"] == {"n": 50}:
            row["created_at_ms"] = float("inf")  # written as Infinity, read back as inf
    return rows


BROKEN: Dict[str, Broken] = {
    # `after` read as inclusive: every page starts with the cursor's own row
    "includes-the-cursor": lambda h, c, after, limit: [
        r for r in _mine(h, c) if r["id"] >= after][:limit],
    # older rows, at and below the cursor, before the new ones
    "repeats-older-rows": lambda h, c, after, limit: [
        r for r in _mine(h, c) if r["id"] <= after][-3:] + _after(h, c, after)[:limit],
    # each page's rows in descending order
    "reversed": lambda h, c, after, limit: _after(h, c, after)[:limit][::-1],
    # no WHERE channel = ?: every channel's rows
    "other-channel": lambda h, c, after, limit: [r for r in h.rows if r["id"] > after][:limit],
    # the same full page whatever the cursor
    "never-advances": lambda h, c, after, limit: _mine(h, c)[3:3 + limit],
    # one row whose created_at_ms no int holds
    "a-number-out-of-range": _out_of_range,
}

#: What each must deliver of the missed rows (numbered 1 to MISSED).
EXPECTED = {
    "never-advances": list(range(1, 101)),  # the only rows it ever shows
    "a-number-out-of-range": [n for n in range(1, MISSED + 1) if n != 50],
}


def _serve(broken: Broken, hostile: HostileServer) -> Any:
    async def history(request: Any) -> Any:
        channel = request.query["channel"]
        after = int(request.query.get("after", 0))
        limit = int(request.query.get("limit", 50))
        return json_response({"messages": broken(hostile, channel, after, limit)})

    return history


def _hang(hanging: threading.Event, release: threading.Event) -> Any:
    """A knob that sets ``hanging`` and answers nothing until ``release`` is set."""

    async def hang(request: Any) -> Any:
        hanging.set()
        while not release.is_set():
            await asyncio.sleep(0.05)
        return None

    return hang


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_catch_up_from_broken_history_delivers_what_is_new_once_and_stays_live(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str,
    kind: str, caplog: pytest.LogCaptureFixture,
) -> None:
    for n in range(3):
        hostile.store(channel_name, {"old": n})
    client = hostile_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    assert ch.last_id == 3
    hostile.on_history = _serve(BROKEN[kind], hostile)
    for n in range(1, MISSED + 1):  # while the client is away, beside another channel's
        hostile.store(channel_name, {"n": n})
        hostile.store("chat:other", {"secret": n})
    expected = EXPECTED.get(kind, list(range(1, MISSED + 1)))
    with caplog.at_level(logging.WARNING, "cohrt_sync.channel"):
        hostile.drop_all()
        recorder.wait_for(lambda: len(recorder.messages()) >= len(expected))
        recorder.wait_for(lambda: recorder.of("reconnected"))
        # Live again at once: the next message arrives, once, after the recovered ones.
        ch.publish({"live": 1})
        recorder.wait_for(lambda: len(recorder.messages()) > len(expected))
    got = recorder.messages()
    assert [m.data for m in got] == [{"n": n} for n in expected] + [{"live": 1}]
    ids = [m.id for m in got]
    assert ids == sorted(set(ids))
    assert all(m.channel == channel_name for m in got)
    # Each kind of problem reported once, as a ProtocolError naming the endpoint;
    # nothing was a failed catch-up, so nothing reconnected again.
    errors = [e[2] for e in recorder.of("error")]
    assert errors and all(isinstance(e, cohrt_sync.ProtocolError) for e in errors)
    assert all("/edge/realtime/history" in str(e) for e in errors)
    assert len({str(e) for e in errors}) == len(errors)
    if kind == "never-advances":
        assert len(errors) == 1 and "no progress" in str(errors[0])
    assert not any("catch-up failed" in r.getMessage() for r in caplog.records)
    assert ch.reconnects == 1 and len(recorder.of("reconnected")) == 1

    # Another drop: the same broken server, the same problems, no new report.
    hostile.store(channel_name, {"n": "again"})
    hostile.drop_all()
    recorder.wait_for(lambda: len(recorder.of("reconnected")) == 2)
    ch.publish({"live": 2})
    recorder.wait_for(lambda: recorder.messages()[-1].data == {"live": 2})
    later = [m.data for m in recorder.messages()[len(got):]]
    # A server that never advances never shows the new row; the others do.
    assert later == ([] if kind == "never-advances" else [{"n": "again"}]) + [{"live": 2}]
    assert [e[2] for e in recorder.of("error")] == errors
    assert ch.reconnects == 2


def test_iter_history_keeps_what_it_can_prove_and_raises_where_history_stalls(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    for n in range(150):
        hostile.store(channel_name, {"n": n})
    hostile.on_history = _serve(BROKEN["never-advances"], hostile)
    client = hostile_client()
    got: List[Any] = []
    with pytest.raises(cohrt_sync.ProtocolError, match="no progress"):
        for msg in client.iter_history(channel_name, after=3):
            got.append(msg.data)
    assert got == [{"n": n} for n in range(3, 103)]


@pytest.mark.parametrize("kind", ["includes-the-cursor", "reversed", "other-channel"])
def test_iter_history_walks_past_broken_pages_and_logs_each_kind_once(
    hostile: HostileServer, hostile_client: Any, channel_name: str, kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for n in range(250):
        hostile.store(channel_name, {"n": n})
        hostile.store("chat:other", {"secret": n})
    hostile.on_history = _serve(BROKEN[kind], hostile)
    client = hostile_client()
    with caplog.at_level(logging.WARNING, "cohrt_sync.client"):
        got = [m.data for m in client.iter_history(channel_name, after=1)]
    assert got == [{"n": n} for n in range(1, 250)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "/edge/realtime/history" in warnings[0]


def test_client_history_refuses_a_page_it_can_prove_wrong_and_says_what_is_right(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    for n in range(6):
        hostile.store(channel_name, {"n": n})
    hostile.on_history = _serve(BROKEN["reversed"], hostile)
    client = hostile_client()
    with pytest.raises(cohrt_sync.HistoryPageError, match="out of order") as info:
        client.history(channel_name, after=2)
    err = info.value
    assert [m.id for m in err.messages] == [3, 4, 5, 6] and err.served == 4
    assert list(err.problems) == ["ids out of order"]


@pytest.mark.parametrize(
    ("endpoint", "thread"),
    [("history", "_dispatcher"), ("token", "_conn")],
    ids=["catch-up-history-read", "reconnect-token-mint"],
)
def test_close_cuts_a_request_that_hangs(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str,
    endpoint: str, thread: str,
) -> None:
    hanging, release = threading.Event(), threading.Event()
    client = hostile_client(plugins=[recorder], timeout=(5.0, 60.0))
    ch = client.subscribe(channel_name, "alice")
    setattr(hostile, f"on_{endpoint}", _hang(hanging, release))
    hostile.drop_all()  # the reconnect mints a token, its catch-up reads history
    assert hanging.wait(10)
    stuck = getattr(ch, thread).thread  # the part's thread
    assert stuck is not None
    try:
        started = time.monotonic()
        ch.close(timeout=5.0)
        assert time.monotonic() - started < 2.0
        assert not stuck.is_alive()
    finally:
        release.set()
    wait_until(lambda: recorder.of("closed"))
