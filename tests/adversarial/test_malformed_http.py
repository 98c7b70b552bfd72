"""Requests aiohttp can't parse, and wrong methods, still get the JSON error envelope."""

from __future__ import annotations

import json
import logging
import socket
from typing import Iterator, Tuple

import pytest
import requests

from cohrt_sync.server import LocalServer

KEY = "km_malformed_3e9a0c1b7d5f"

#: Requests the HTTP parser refuses; each carries the key where a careless
#: error page would quote it back.
MALFORMED = {
    "control byte in a header": (
        f"GET /api/resources HTTP/1.1\r\nAuthorization: Bearer {KEY}\x01\r\n\r\n"
    ),
    "bad request line": f"GET /edge/realtime/history?key={KEY} x HTTP/1.1\r\n\r\n",
    "header without a colon": f"GET / HTTP/1.1\r\nX-Key {KEY}\r\n\r\n",
    "not HTTP at all": f"\x16\x03\x01{KEY}\r\n\r\n",
}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(keys=[KEY], provision=True) as srv:
        yield srv


def _raw(server: LocalServer, request: str) -> Tuple[str, str]:
    """Send ``request`` as bytes; (status line and headers, body) of the answer."""
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(request.encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    return head, body


@pytest.mark.parametrize("request_text", list(MALFORMED.values()), ids=list(MALFORMED))
def test_unparsable_request_gets_the_envelope_and_no_echo(
    server: LocalServer, request_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the access log too, which once failed on these
    head, body = _raw(server, request_text)
    assert head.split(" ", 2)[1] == "400", head
    assert "application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT", error
    assert "malformed HTTP request" in error["message"], error
    assert KEY not in head + body
    assert not [r for r in caplog.records if r.getMessage() == "Unhandled exception"]


def test_wrong_method_names_the_allowed_ones(server: LocalServer) -> None:
    r = requests.put(server.base_url + "/edge/realtime/history", timeout=5)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == 405
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET"}
