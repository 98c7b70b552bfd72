"""RealtimeKit paths: no traversal leaves a tenant's app or the proxy's prefix.

The hosted proxy maps ``/edge/realtimekit/<path>`` onto the tenant's own app
upstream, so a path that climbs out (``..``, encoded or not, doubled
slashes, ``.``) could reach another app or another route. Sent raw, so no
client tidies the path first: each is Cloudflare's 404 and none reaches the
meeting, the other tenant's meeting or the routes outside the prefix.
"""

from __future__ import annotations

import json
import socket
from typing import Iterator, Tuple

import pytest
import requests

from cohrt_sync.server import LocalServer

KEY_A = "krtk_paths_a_1b2c3d4e"
KEY_B = "krtk_paths_b_5f6a7b8c"
PATHS = [
    "/edge/realtimekit/../../api/resources",
    "/edge/realtimekit/../realtime/history?channel=x",
    "/edge/realtimekit/%2e%2e/%2e%2e/api/resources",
    "/edge/realtimekit/meetings/..%2F..%2Fpresets",
    "/edge/realtimekit/meetings/%2e%2e%2f%2e%2e%2fpresets",
    "/edge/realtimekit/meetings/%2e%2e/presets",
    "/edge/realtimekit/meetings/..",
    "/edge/realtimekit/meetings/../meetings/{id}",
    "/edge/realtimekit/./meetings/{id}",
    "/edge/realtimekit//meetings/{id}",
    "/edge/realtimekit/meetings/{id}/participants/..%2F..%2F..%2F",
    "/edge/realtimekit/meetings/{id}%2F..%2F{id}",
]


@pytest.fixture(scope="module")
def meeting() -> Iterator[Tuple[LocalServer, str]]:
    with LocalServer(keys=[KEY_A, KEY_B], provision=True, rtk_delay_ms=0) as srv:
        r = requests.post(
            srv.base_url + "/edge/realtimekit/meetings",
            json={"title": "a's"},
            headers={"Authorization": f"Bearer {KEY_A}"},
            timeout=5,
        )
        assert r.status_code == 201, r.text
        yield srv, r.json()["data"]["id"]


def _raw(srv: LocalServer, method: str, path: str, key: str) -> Tuple[int, dict]:
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Connection: close\r\nContent-Length: 0\r\n\r\n".encode()
        )
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.mark.parametrize("template", PATHS)
@pytest.mark.parametrize("key", [KEY_A, KEY_B], ids=["owner", "other tenant"])
def test_a_climbing_path_is_cloudflares_404(
    meeting: Tuple[LocalServer, str], template: str, key: str
) -> None:
    srv, meeting_id = meeting
    for method in ("GET", "DELETE"):
        status, body = _raw(srv, method, template.format(id=meeting_id), key)
        assert status in (404, 405), (status, body)
        assert body["success"] is False and body["data"] is None, body
    # The meeting is still there, and still its owner's alone.
    assert _raw(srv, "GET", f"/edge/realtimekit/meetings/{meeting_id}", KEY_A)[0] == 200
    assert _raw(srv, "GET", f"/edge/realtimekit/meetings/{meeting_id}", KEY_B)[0] == 404
    assert _raw(srv, "GET", "/api/resources", KEY_A)[1]["resources"]["realtime"]["active"]
