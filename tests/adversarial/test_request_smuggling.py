"""Request smuggling: ambiguous message framings are refused, and nothing rides along.

Each request below frames its body in a way two HTTP parsers could read
differently (both Content-Length and Transfer-Encoding, obfuscated or
repeated headers, odd chunk sizes, bare LF, obs-fold …), with a second
request behind it that a proxy in front of the server might not see. The
server must answer exactly one 400 (the JSON envelope) and close the
connection; neither the framed publish nor the smuggled one may happen.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Dict, Iterator, List

import pytest
import requests

from cohrt_sync.server import LocalServer

KEY = "ksm_smuggle_8c7b6a5d4e3f"


def _head(extra: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST /edge/realtime " + version + b"\r\nHost: x\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\n"
        + extra
        + b"\r\n"
    )


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def framings(front: bytes, smuggled: bytes) -> Dict[str, bytes]:
    """Each ambiguous framing of the publish ``front``, with ``smuggled`` behind it."""
    ch = _chunked(front)
    n = len(front)
    rest = ch + smuggled
    return {
        "CL.TE": _head(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(ch)) + rest,
        "TE.CL": _head(b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n") + rest,
        "TE xchunked": _head(b"Transfer-Encoding: xchunked\r\n") + rest,
        "TE with a space before the colon": _head(b"Transfer-Encoding : chunked\r\n") + rest,
        "TE tab and CL": _head(b"Transfer-Encoding:\tchunked\r\nContent-Length: 3\r\n") + rest,
        "TE twice": _head(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n")
        + rest,
        "TE chunked, identity": _head(b"Transfer-Encoding: chunked, identity\r\n") + rest,
        "TE by obs-fold": _head(b"Transfer-Encoding:\r\n chunked\r\n") + rest,
        "TE after a bare LF": _head(b"X: y\nTransfer-Encoding: chunked\r\n") + rest,
        "TE in HTTP/1.0": _head(b"Transfer-Encoding: chunked\r\n", b"HTTP/1.0") + rest,
        "CL twice, differing": _head(b"Content-Length: %d\r\nContent-Length: 0\r\n" % n)
        + front
        + smuggled,
        "CL with a plus sign": _head(b"Content-Length: +%d\r\n" % n) + front + smuggled,
        "CL as a list": _head(b"Content-Length: %d, %d\r\n" % (n, n)) + front + smuggled,
        "CL in hex": _head(b"Content-Length: 0x%x\r\n" % n) + front + smuggled,
        "chunk size overflowing 64 bits": _head(b"Transfer-Encoding: chunked\r\n")
        + b"fffffffffffffffff1\r\n"
        + front
        + b"\r\n0\r\n\r\n"
        + smuggled,
        "chunk size with 0x": _head(b"Transfer-Encoding: chunked\r\n")
        + b"0x%x\r\n%s\r\n0\r\n\r\n" % (n, front)
        + smuggled,
        "chunks ended by bare LF": _head(b"Transfer-Encoding: chunked\r\n")
        + b"%x\n%s\n0\n\n" % (n, front)
        + smuggled,
        "NUL in a header value": _head(b"X-A: a\x00b\r\nContent-Length: %d\r\n" % n)
        + front
        + smuggled,
        "space in a header name": _head(b"Content Length: 5\r\nContent-Length: %d\r\n" % n)
        + front
        + smuggled,
    }


NAMES = list(framings(b"", b""))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(keys=[KEY], provision=True) as srv:
        yield srv


def _answers(srv: LocalServer, data: bytes) -> List[bytes]:
    """Everything the server sends back until it closes, split into responses."""
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(data)
        got = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                pytest.fail(f"connection left open after {got[:200]!r}")
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return [b"HTTP/" + part for part in got.split(b"HTTP/")[1:]]


@pytest.mark.parametrize("name", NAMES)
def test_an_ambiguous_framing_is_one_400_and_nothing_is_published(
    server: LocalServer, name: str
) -> None:
    front_ch, smuggled_ch = f"front-{uuid.uuid4().hex}", f"smuggled-{uuid.uuid4().hex}"
    front = json.dumps({"channel": front_ch, "data": "front"}).encode()
    body = json.dumps({"channel": smuggled_ch, "data": "smuggled"}).encode()
    smuggled = (
        b"POST /edge/realtime HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    answers = _answers(server, framings(front, smuggled)[name])
    assert len(answers) == 1, answers
    head, _, payload = answers[0].partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", head
    assert json.loads(payload)["error"]["status"] == "INVALID_ARGUMENT"
    assert _history(server, front_ch) == []
    assert _history(server, smuggled_ch) == []


def _history(srv: LocalServer, channel: str) -> list:
    r = requests.get(
        srv.base_url + "/edge/realtime/history",
        params={"channel": channel},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])
