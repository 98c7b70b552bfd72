"""``newest`` and the catch-up anchor against answers of every shape: checked, then walked.

Direct SQL is one request; its answer must be the channel's rows, ids
decreasing, data as JSON text. Any other shape, or a refusal, falls back to
walking the history (whose pages are checked as catch-up checks them), so
the caller gets the same messages. A timeout or a rate limit is raised at
once: a walk would multiply it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable, Dict, List

import pytest

import cohrt_sync
from cohrt_sync import scrollback

from ._server import HostileServer, json_response


def _sql_rows(hostile: HostileServer, channel: str, n: int) -> List[Dict[str, Any]]:
    rows = [r for r in hostile.rows if r["channel"] == channel][-n:]
    return [
        {"id": r["id"], "channel": r["channel"], "event": r["event"],
         "data": json.dumps(r["data"]), "created_at_ms": r["created_at_ms"]}
        for r in reversed(rows)
    ]


def _fill(hostile: HostileServer, channel: str) -> List[int]:
    ids = []
    for n in range(7):
        ids.append(hostile.store(channel, {"n": n})["id"])
        hostile.store(channel + "-other", {"noise": n})
    return ids


def _answer(body: Any, status: int = 200) -> Callable[[Any], Any]:
    async def answer(request: Any) -> Any:
        return json_response(body, status)

    return answer


def test_a_well_shaped_sql_answer_is_one_request(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    ids = _fill(hostile, channel_name)

    async def sql(request: Any) -> Any:
        body = await request.json()
        assert body["query"] == scrollback.newest_query(3) and body["params"] == [channel_name]
        return json_response({"results": _sql_rows(hostile, channel_name, 3), "success": True})

    hostile.on_sql = sql
    newest = make_client().newest(channel_name, 3)
    assert [m.id for m in newest] == ids[-3:] and [m.data for m in newest] == [
        {"n": 4}, {"n": 5}, {"n": 6}
    ]
    assert hostile.hits.get("sql") == 1 and hostile.hits.get("history") is None


def _misshapen(hostile: HostileServer, channel: str) -> Dict[str, Callable[[], Any]]:
    good = lambda: _sql_rows(hostile, channel, 3)  # noqa: E731

    def edit(**change: Any) -> Callable[[], Any]:
        def rows() -> Any:
            found = good()
            found[1] = {**found[1], **change}
            return {"results": found}

        return rows

    return {
        "ascending": lambda: {"results": good()[::-1]},
        "other channel": edit(channel=channel + "-other"),
        "data decoded": edit(data={"n": 5}),
        "data not json": edit(data="{n: 5"),
        "id as text": edit(id="5"),
        "event not text": edit(event=7),
        "too many rows": lambda: {"results": _sql_rows(hostile, channel, 4)},
        "the anchor's rows": lambda: {"results": [{"last_id": 9}]},
        "no results": lambda: {"success": True},
    }


@pytest.mark.parametrize(
    "shape",
    ["ascending", "other channel", "data decoded", "data not json", "id as text",
     "event not text", "too many rows", "the anchor's rows", "no results"],
)
def test_a_misshapen_sql_answer_falls_back_to_the_walk(
    hostile: HostileServer,
    make_client: Any,
    channel_name: str,
    shape: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = _fill(hostile, channel_name)
    body = _misshapen(hostile, channel_name)[shape]

    async def sql(request: Any) -> Any:
        return json_response(body())

    hostile.on_sql = sql
    with caplog.at_level(logging.WARNING, logger="cohrt_sync.client"):
        newest = make_client().newest(channel_name, 3)
    assert [m.id for m in newest] == ids[-3:]
    assert [m.data for m in newest] == [{"n": 4}, {"n": 5}, {"n": 6}]
    assert hostile.hits["history"] >= 1
    (warning,) = [r for r in caplog.records if "walking history" in r.getMessage()]
    assert "wrong shape" in warning.getMessage()


@pytest.mark.parametrize("status", [400, 403, 404, 500])
def test_sql_refused_falls_back_to_the_walk(
    hostile: HostileServer, make_client: Any, channel_name: str, status: int
) -> None:
    ids = _fill(hostile, channel_name)
    hostile.on_sql = _answer({"error": {"code": status, "message": "no SQL here"}}, status)
    client = make_client()
    assert [m.id for m in client.newest(channel_name, 2)] == ids[-2:]
    assert scrollback.last_id(client, channel_name) == ids[-1]


def test_the_walk_ends_at_a_short_page(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    # Every history read counts against the tier's caps (2,500 in an
    # ephemeral tenant's life): a page shorter than asked is the last, so the
    # walk doesn't spend one more read to find an empty page.
    ids = [hostile.store(channel_name, {"n": n})["id"] for n in range(170)]
    hostile.on_sql = _answer({"error": {"code": 403, "message": "no"}}, 403)
    reads: List[int] = []

    async def counted(request: Any) -> Any:
        after = int(request.query.get("after", 0))
        reads.append(after)
        rows = [r for r in hostile.rows if r["channel"] == channel_name and r["id"] > after]
        return json_response({"messages": rows[: int(request.query.get("limit", 50))]})

    hostile.on_history = counted
    assert [m.id for m in make_client().newest(channel_name, 50)] == ids[-50:]
    assert reads == [0, ids[99]]


async def _hang(request: Any) -> Any:
    await asyncio.sleep(60)


def test_a_hanging_sql_is_raised_not_walked(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    _fill(hostile, channel_name)
    hostile.on_sql = _hang
    client = make_client(timeout=(1.0, 0.5))
    with pytest.raises(cohrt_sync.CohrtTimeoutError):
        client.newest(channel_name, 3)
    with pytest.raises(cohrt_sync.CohrtTimeoutError):
        scrollback.last_id(client, channel_name)
    assert hostile.hits.get("history") is None


def test_a_rate_limited_sql_is_raised_not_walked(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    _fill(hostile, channel_name)
    hostile.on_sql = _answer({"error": {"code": 429, "message": "slow down"}}, 429)
    with pytest.raises(cohrt_sync.RateLimitedError):
        make_client().newest(channel_name, 3)
    assert hostile.hits.get("history") is None


@pytest.mark.parametrize(
    "answer,expected",
    [
        ({"results": [{"last_id": 6}]}, 6),
        ({"results": [{"last_id": None}]}, 0),
        ({"results": []}, 0),
        ({"results": [{"last_id": "6"}]}, "walk"),
        ({"results": [{"last_id": -1}]}, "walk"),
        ({"results": [{"last_id": True}]}, "walk"),
    ],
)
def test_last_id_checks_its_answer(
    hostile: HostileServer, make_client: Any, channel_name: str, answer: Any, expected: Any
) -> None:
    ids = _fill(hostile, channel_name)
    hostile.on_sql = _answer(answer)
    got = scrollback.last_id(make_client(), channel_name)
    if expected == "walk":
        assert got == ids[-1] and hostile.hits["history"] >= 1
    else:
        assert got == expected and hostile.hits.get("history") is None
