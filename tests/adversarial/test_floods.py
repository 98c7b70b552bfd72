"""Floods of distinct names keep the server's memory flat.

Anything the server remembers per key, token, session, user or channel is an
attacker's way to grow it: requests with thousands of made-up keys, token
mints for thousands of users, edge sessions each used once, publishes and
history reads on thousands of channels. Each flood runs twice over in a child
server; its RSS may move by allocator noise and by the bounded session cache
(10,000 bearers), never with the flood's size.
"""

from __future__ import annotations

import uuid
from typing import Callable, Dict, Iterator

import pytest
import requests

from ._proc import ServerProcess

KEY = "kfl_flood_2b3c4d5e6f7a"
MIB = 1 << 20
#: Requests per half of each flood.
N = 1500
#: Growth allowed over a whole flood (both halves).
GROWTH = 8 * MIB


@pytest.fixture(scope="module")
def sp() -> Iterator[ServerProcess]:
    with ServerProcess(["--key", KEY, "--provision"]) as proc:
        yield proc


def _floods(base: str, http: requests.Session) -> Dict[str, Callable[[], requests.Response]]:
    auth = {"Authorization": f"Bearer {KEY}"}

    def session_used_once() -> requests.Response:
        bearer = http.post(base + "/edge/session", params={"key": KEY}, timeout=5).json()["token"]
        return http.get(
            base + "/edge/realtime/history",
            params={"channel": "c"},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=5,
        )

    return {
        "made-up keys": lambda: http.get(
            base + "/edge/realtime/history",
            params={"channel": "c"},
            headers={"Authorization": f"Bearer k_{uuid.uuid4().hex}"},
            timeout=5,
        ),
        "token mints": lambda: http.post(
            base + "/edge/realtime/token",
            json={"user_id": uuid.uuid4().hex},
            headers=auth,
            timeout=5,
        ),
        "edge sessions": session_used_once,
        "channels published to": lambda: http.post(
            base + "/edge/realtime",
            json={"channel": f"c{uuid.uuid4().hex}", "data": 1, "persist": False},
            headers=auth,
            timeout=5,
        ),
        "channels read": lambda: http.get(
            base + "/edge/realtime/history",
            params={"channel": f"c{uuid.uuid4().hex}"},
            headers=auth,
            timeout=5,
        ),
    }


FLOODS = ["made-up keys", "token mints", "edge sessions", "channels published to", "channels read"]


@pytest.mark.parametrize("flood", FLOODS)
def test_a_flood_of_distinct_names_keeps_memory_flat(sp: ServerProcess, flood: str) -> None:
    http = requests.Session()
    send = _floods(sp.base_url, http)[flood]
    for _ in range(100):  # the code paths warm, the allocator at its working size
        send()
    start = sp.settled_rss()
    halves = []
    for _ in range(2):
        for _ in range(N):
            assert send().status_code < 500
        halves.append(sp.settled_rss())
    report = (
        f"{flood}: {2 * N} requests, RSS {start / MIB:.1f} -> {halves[0] / MIB:.1f}"
        f" -> {halves[1] / MIB:.1f} MiB"
    )
    print(report)
    assert halves[1] - start < GROWTH, report
    assert sp.alive()
