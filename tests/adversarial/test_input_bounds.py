"""Channel names and ``after`` bounds, on every route that takes them.

A channel name is 1-256 characters with no control characters, whether it
comes in a publish body, a history query or a socket's handshake; ``after``
is an integer from 0 to SQLite's largest. Anything else is a 400 with the
envelope (before the upgrade, for a socket), never a 500 nor a row.
"""

from __future__ import annotations

from typing import Any, Iterator
from urllib.parse import urlencode

import pytest
import requests
import websocket

from cohrt_sync.server import LocalServer

KEY = "kib_bounds_4e5f6a7b8c9d"
BAD_NAMES = ["", "c" * 257, "a\x00b", "a\nb", "a\rb", "tab\there", "del\x7f"]
BAD_JSON_NAMES: list = [None, 5, ["c"], {"c": 1}, True]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(keys=[KEY], provision=True) as srv:
        yield srv


def _error_400(r: requests.Response) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("name", BAD_NAMES + BAD_JSON_NAMES, ids=repr)
def test_a_bad_channel_name_is_refused_by_http_publish(server: LocalServer, name: Any) -> None:
    r = requests.post(
        server.base_url + "/edge/realtime",
        json={"channel": name, "data": 1},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    _error_400(r)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_bad_channel_name_is_refused_by_history(server: LocalServer, name: str) -> None:
    r = requests.get(
        server.base_url + "/edge/realtime/history",
        params={"channel": name},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    _error_400(r)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_bad_channel_name_is_refused_before_the_upgrade(server: LocalServer, name: str) -> None:
    token = requests.post(
        server.base_url + "/edge/realtime/token",
        json={"user_id": "u"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    ).json()["token"]
    query = urlencode({"token": token, "channel": name})
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{server.ws_url}/edge/realtime?{query}", timeout=5)
    assert refused.value.status_code == 400


@pytest.mark.parametrize("after", ["-1", "-9223372036854775808", "abc", "1.5", "1e3", str(2**63)])
def test_after_out_of_bounds_is_400(server: LocalServer, after: str) -> None:
    r = requests.get(
        server.base_url + "/edge/realtime/history",
        params={"channel": "c", "after": after},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    _error_400(r)
