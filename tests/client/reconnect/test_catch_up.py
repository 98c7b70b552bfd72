"""Catch-up trusts history only as far as exactly-once, in-order delivery allows."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Dict, List

import pytest

import cohrt_sync
from tests.hostile._server import HostileServer, json_response

from .conftest import Recorder, wait_until


def _rows(hostile: HostileServer, channel: str, ids: List[int], other: str = "") -> List[Dict]:
    return [
        {"id": i, "channel": other or channel, "event": "message", "action": "message",
         "data": {"n": i}, "created_at_ms": int(time.time() * 1000)}
        for i in ids
    ]


def _page(make: Callable[[int], List[Dict]]) -> Any:
    async def history(request: Any) -> Any:
        return json_response({"messages": make(int(request.query.get("after", 0)))})

    return history


def _hang(hanging: threading.Event, release: threading.Event) -> Any:
    """A knob that sets ``hanging`` and answers nothing until ``release`` is set."""

    async def hang(request: Any) -> Any:
        hanging.set()
        while not release.is_set():
            await asyncio.sleep(0.05)
        return None

    return hang


BROKEN_PAGES = {
    # id <= after: would be delivered again
    "repeats-the-cursor": lambda h, c: _page(lambda after: _rows(h, c, [after, after + 1])),
    # 10, 9, 8, 7, 6
    "reversed": lambda h, c: _page(lambda after: _rows(h, c, list(range(after + 5, after, -1)))),
    # another channel's rows
    "other-channel": lambda h, c: _page(lambda after: _rows(h, c, [after + 1], other="chat:x")),
    # never advances: the same full page whatever the cursor (a short page
    # would end the walk by itself)
    "never-advances": lambda h, c: _page(lambda after: _rows(h, c, list(range(1, 101)))),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_PAGES))
def test_a_broken_history_page_is_a_reported_gap_not_a_delivery(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str, kind: str
) -> None:
    for _ in range(3):
        hostile.store(channel_name, {"old": True})
    client = hostile_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    assert ch.last_id == 3
    hostile.on_history = BROKEN_PAGES[kind](hostile, channel_name)
    hostile.drop_all()
    recorder.wait_for(lambda: recorder.of("error"))
    err = recorder.of("error")[0][2]
    assert isinstance(err, cohrt_sync.ProtocolError)
    assert "/edge/realtime/history" in str(err)
    assert recorder.messages() == []
    # The gap stays open (live frames withheld) until history answers right.
    hostile.store(channel_name, {"missed": 4})
    hostile.on_history = None
    recorder.wait_for(lambda: recorder.messages())
    ch.publish({"live": 5})
    recorder.wait_for(lambda: len(recorder.messages()) >= 2)
    assert [m.id for m in recorder.messages()] == [4, 5]


def test_iter_history_refuses_a_page_that_does_not_advance(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    hostile.on_history = BROKEN_PAGES["never-advances"](hostile, channel_name)
    client = hostile_client()
    with pytest.raises(cohrt_sync.ProtocolError, match="not past"):
        list(client.iter_history(channel_name, after=0))


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
