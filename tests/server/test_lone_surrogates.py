"""A lone UTF-16 surrogate ("\\ud800") anywhere a client can put one: never a 500.

JSON can spell one (``"\\ud800"``) although no UTF-8 text can hold it, so it
would fail only where the value is finally encoded (SQLite, a log line, a
frame). The server refuses it where it reads JSON: 400 with the envelope over
HTTP, ``{"error": "Invalid JSON"}`` on a socket that stays open. A query
string or header can only carry bytes that are not UTF-8, which are decoded
before any handler sees them.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from ._wire import Api, Sock, assert_envelope, uniq
from .conftest import KEY_A

S = "\\ud800"  # as JSON spells it

BODIES = {
    "/edge/realtime": {
        "data": f'{{"channel":"c","data":"{S}"}}',
        "key in data": f'{{"channel":"c","data":{{"{S}":1}}}}',
        "event": f'{{"channel":"c","event":"{S}","data":1}}',
        "channel": f'{{"channel":"{S}","data":1}}',
        "top-level key": f'{{"channel":"c","data":1,"{S}":2}}',
    },
    "/edge/realtime/token": {
        "user_id": f'{{"user_id":"{S}"}}',
        "name": f'{{"user_id":"u","name":"{S}"}}',
    },
    "/edge/database": {
        "query": f'{{"query":"SELECT \'{S}\'"}}',
        "params": f'{{"query":"SELECT ?","params":["{S}"]}}',
    },
}
CASES = [(path, name, body) for path, bodies in BODIES.items() for name, body in bodies.items()]


@pytest.mark.parametrize("path,name,body", CASES, ids=[f"{p} {n}" for p, n, _ in CASES])
def test_a_lone_surrogate_in_a_body_is_400(api_a: Api, path: str, name: str, body: str) -> None:
    r = api_a.post_raw(path, body.encode())
    assert_envelope(r, 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    "frame",
    [
        f'{{"action":"publish","data":"{S}"}}',
        f'{{"action":"publish","data":{{"{S}":1}}}}',
        f'{{"action":"publish","event":"{S}","data":1}}',
        f'{{"action":"{S}"}}',
        f'{{"action":"publish","data":1,"{S}":1}}',
    ],
)
def test_a_lone_surrogate_in_a_frame_is_an_error_frame(
    api_a: Api, base_url: str, frame: str
) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a:
        a.send(frame)
        assert a.reply() == {"error": "Invalid JSON"}
        a.publish({"still": "open"})


def _raw(base_url: str, request: bytes) -> Any:
    host, port = base_url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, head
            head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize("raw", [b"\xed\xa0\x80", b"\xff"], ids=["surrogate bytes", "0xff"])
def test_bytes_that_are_not_utf8_in_a_query_or_header_are_never_500(
    base_url: str, raw: bytes
) -> None:
    auth = b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
    history = b"GET /edge/realtime/history?channel=" + raw + b" HTTP/1.1\r\nHost: x\r\n" + auth
    assert _raw(base_url, history + b"\r\n") == 400
    body = b'{"channel":"c","data":1}'
    publish = (
        b"POST /edge/realtime HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Idempotency-Key: k"
        + raw
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    assert _raw(base_url, publish) < 500
