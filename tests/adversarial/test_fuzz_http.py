"""Hypothesis-generated HTTP requests, each answered as the OpenAPI document says.

Where tests/server/test_robustness.py throws a fixed list and a seeded loop of
bodies at five endpoints, this drives every documented operation with
generated bodies (JSON built from the fields the server reads, raw bytes,
strict-JSON traps, huge values, chunked uploads), content types, query
strings and credentials, and checks each answer against the document:
never a 5xx, never a hang, a documented status with a body of the documented
shape. The examples that once broke the server are pinned as plain tests
at the bottom.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, Tuple
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cohrt_sync.server import LocalServer
from cohrt_sync.server.realtimekit import CODE_NO_ROUTE

from ._openapi import DOCUMENT, OPERATIONS, real_ids

KEY_EDGE = "ke_fuzzhttp_3a2b1c0d9e8f"
KEY_SQL = "ks_fuzzhttp_4b3c2d1e0f9a"
KEY_PROV = "kp_fuzzhttp_5c4d3e2f1a0b"
#: A tenant nobody attacks; it must be served all along.
KEY_BYSTANDER = "kb_fuzzhttp_6d5e4f3a2b1c"
MAX_PAYLOAD = 4096
#: No request may take longer than this to be answered (a hang fails the test).
ANSWER_DEADLINE_S = 15.0

SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    keys = [KEY_EDGE, KEY_SQL, KEY_PROV, KEY_BYSTANDER]
    # A small payload limit so generated values cross it often.
    with LocalServer(keys=keys, provision=True, max_payload=MAX_PAYLOAD, rtk_delay_ms=0) as srv:
        yield srv


def _make_ids(server: LocalServer) -> Dict[str, str]:
    return real_ids(server.base_url, KEY_EDGE, {}, "group_call_participant")


@pytest.fixture(scope="module")
def ids(server: LocalServer) -> Dict[str, str]:
    """A real meeting and participant, so id routes reach their handlers."""
    return _make_ids(server)


@pytest.fixture()
def fresh_ids(server: LocalServer) -> Dict[str, str]:
    """The same, for one test only (the fuzzing may delete the shared participant)."""
    return _make_ids(server)


@pytest.fixture(scope="module")
def session(server: LocalServer) -> str:
    r = requests.post(server.base_url + "/edge/session", params={"key": KEY_EDGE}, timeout=5)
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def ws_token(server: LocalServer) -> str:
    r = requests.post(
        server.base_url + "/edge/realtime/token",
        params={"key": KEY_EDGE},
        json={"user_id": "fuzz"},
        timeout=5,
    )
    return str(r.json()["token"])


def key_for(path: str) -> str:
    if path.startswith("/api/"):
        return KEY_PROV
    return KEY_SQL if path == "/edge/database" else KEY_EDGE


# -- strategies ------------------------------------------------------------------------------
#: Every field some handler reads, so generated objects get past "unknown field".
FIELDS = [
    "channel", "data", "event", "persist", "user_id", "name", "ttl", "query", "sql",
    "params", "write_region", "title", "status", "record_on_start", "live_stream_on_start",
    "persist_chat", "summarize_on_end", "transcribe_on_end", "session_keep_alive_time_in_secs",
    "ai_config", "recording_config", "preset_name", "picture", "custom_participant_id",
    "token", "id", "created_at", "summarization", "transcription", "keywords", "language",
]  # fmt: skip
HUGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**300), 10**4000]
HUGE_FLOATS = [1e308, -1e308, 5e-324, -0.0, 1.7976931348623157e308, 2.0**53, 300.0, 60.0]
# Any character, lone surrogates included: ensure_ascii escapes them as \ud800.
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=24)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(range(len(HUGE_INTS))).map(lambda i: HUGE_INTS[i])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(HUGE_FLOATS)
    | ANY_TEXT
    | st.sampled_from([*FIELDS, "ACTIVE", "INACTIVE", "us", "EU", "group_call_host", ""])
    | st.integers(MAX_PAYLOAD - 8, MAX_PAYLOAD + 8).map(lambda n: "x" * n)
)
JSON = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), kids, max_size=4)
    ),
    max_leaves=16,
)
OBJECTS = st.dictionaries(st.sampled_from(FIELDS) | ANY_TEXT, JSON, max_size=6)

#: Text that only a lax parser takes for JSON, and bodies around the size limits.
TRAPS = [
    b'{"channel":"c","data":NaN}',
    b'{"channel":"c","data":-Infinity}',
    b'{"channel":"c","data":1e400,"user_id":1e400,"ttl":1e400}',
    b'{"channel":"c","data":"\\ud800","user_id":"\\udfff","query":"\\ud800"}',
    b'{"channel":"c","data":' + b"9" * 5000 + b"}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"data":' + b'{"a":' * 20_000 + b"1" + b"}" * 20_001,
    b'\xef\xbb\xbf{"channel":"c","data":1}',
    b'{"channel":"c","data":1}{"channel":"d"}',
    b'{"channel":"c","data":1,}',
    b'{"channel":"c","channel":"\\u0000","data":1}',
    b"\xff\xfe{\x00}\x00",
    b"\x00" * 64,
    b"null",
    b"[]",
    b'"just a string"',
    b"   \r\n\t ",
    b"%7B%7D",
    b'{"channel":"c","data":"' + b"x" * (2 * MAX_PAYLOAD) + b'"}',
    b'{"channel":"c","data":[' + b"1," * 600_000 + b"1]}",
]
BODIES = st.one_of(
    st.none(),
    OBJECTS.map(lambda o: json.dumps(o).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=512),
    ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(range(len(TRAPS))).map(lambda i: TRAPS[i]),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        ";;;",
        None,
    ]
)
QUERY_NAMES = [
    "channel", "after", "limit", "page_no", "per_page", "search", "status", "token", "key",
    "x", "%6Bey",
]  # fmt: skip
QUERY_VALUES = (
    ANY_TEXT.filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t))
    | st.integers().map(str)
    | st.sampled_from(
        [
            "",
            " 5",
            "+5",
            "5_0",
            "\u0665",
            "1e3",
            "0x10",
            "-0",
            "9" * 40,
            "ACTIVE",
            "null",
            "%",
            "chat:x",
        ]
    )
)
#: Credentials: mostly good ones (so requests reach the handlers), else missing,
#: wrong, another tenant's, or malformed (any latin-1 text; JWT-shaped garbage).
GOOD_AUTH = st.sampled_from(["bearer", "query", "both", "session"])
BAD_AUTH = st.one_of(
    st.sampled_from(["none", "other-tenant"]),
    st.tuples(
        st.just("raw"),
        st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
            max_size=40,
        ),
    ),
    st.tuples(
        st.just("jwtish"), st.lists(st.text("abcXYZ09-_=+/.", max_size=12), min_size=3, max_size=3)
    ),
)
AUTH = st.integers(0, 3).flatmap(lambda i: BAD_AUTH if i == 3 else GOOD_AUTH)


@st.composite
def requests_(draw: st.DrawFn) -> Dict[str, Any]:
    path, method = draw(st.sampled_from(OPERATIONS))
    return {
        "path": path,
        "method": method,
        "real_ids": draw(st.booleans()),
        "raw_id": draw(ANY_TEXT.filter(lambda t: t not in ("", ".", ".."))),
        "body": draw(BODIES),
        "chunked": draw(st.booleans()),
        "content_type": draw(CONTENT_TYPES),
        "query": draw(st.dictionaries(st.sampled_from(QUERY_NAMES), QUERY_VALUES, max_size=4)),
        "auth": draw(AUTH),
        "idempotency_key": draw(
            st.none()
            | st.text(
                st.characters(min_codepoint=0x21, max_codepoint=0xFF, blacklist_characters="\x7f"),
                max_size=300,
            )
        ),
    }


def build(req: Dict[str, Any], ids: Dict[str, str], session: str) -> Tuple[str, Dict[str, Any]]:
    """The URL and the ``requests`` keyword arguments of a generated request."""
    path = req["path"]
    for name in ("meeting_id", "participant_id"):
        value = ids[name] if req["real_ids"] else req["raw_id"]
        path = path.replace("{%s}" % name, quote(value.encode("utf-8", "surrogatepass"), safe=""))
    params = dict(req["query"])
    headers: Dict[str, Any] = {}
    key = key_for(req["path"])
    auth = req["auth"]
    if auth in ("bearer", "both"):
        headers["Authorization"] = f"Bearer {key}"
    if auth in ("query", "both"):
        params["key"] = key
    if auth == "session":
        headers["Authorization"] = f"Bearer {session}"
    if auth == "other-tenant":
        headers["Authorization"] = f"Bearer {KEY_BYSTANDER}x"
    if isinstance(auth, tuple) and auth[0] == "raw":
        headers["Authorization"] = ("Bearer " + auth[1]).encode("latin-1")
    if isinstance(auth, tuple) and auth[0] == "jwtish":
        headers["Authorization"] = "Bearer " + ".".join(auth[1])
    if req["content_type"] is not None:
        headers["Content-Type"] = req["content_type"]
    if req["idempotency_key"] is not None:
        headers["Idempotency-Key"] = req["idempotency_key"].encode("latin-1")
    body = req["body"]
    data: Any = body
    if body is not None and req["chunked"]:
        data = iter([body[: len(body) // 2], body[len(body) // 2 :]])
    kwargs = {"params": params, "headers": headers, "data": data, "timeout": (5, ANSWER_DEADLINE_S)}
    return path, kwargs


def assert_documented(path: str, method: str, resp: requests.Response) -> None:
    """``resp`` is an answer the document allows for that operation."""
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    documented = DOCUMENT["paths"][path][method]["responses"]
    assert str(resp.status_code) in documented, (resp.status_code, resp.text[:300])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    json.loads(resp.text, parse_constant=_no_constants)  # strict JSON: no NaN or Infinity
    SCHEMA[path][method.upper()].validate_response(resp)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} in a JSON answer")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(req=requests_())
def test_any_request_gets_a_documented_answer(
    server: LocalServer, ids: Dict[str, str], session: str, ws_token: str, req: Dict[str, Any]
) -> None:
    path, kwargs = build(req, ids, session)
    if req["path"] == "/edge/realtime" and req["method"] == "get":
        # A real connection token gets past the 401 to the channel check and the 426.
        good = isinstance(req["auth"], str) and req["auth"] != "none"
        kwargs["params"].setdefault("token", ws_token if good else "x")
        kwargs["params"].setdefault("channel", "fuzz:ws")
    resp = requests.request(req["method"].upper(), server.base_url + path, **kwargs)
    event(str(resp.status_code))
    if "{" in req["path"] and not req["real_ids"] and resp.status_code in (404, 405):
        body = resp.json()
        if body.get("success") is False and (
            resp.status_code == 405 or body["errors"][0]["code"] == CODE_NO_ROUTE
        ):
            # A generated id such as "a/b" makes a path no route serves: RealtimeKit's
            # catch-all answers it, in Cloudflare's envelope.
            return
    assert_documented(req["path"], req["method"], resp)


BODY_OPERATIONS = [
    (path, method)
    for path, method in OPERATIONS
    if "413" in DOCUMENT["paths"][path][method]["responses"]
]


@pytest.mark.parametrize("path,method", BODY_OPERATIONS)
def test_every_documented_413_is_real(
    server: LocalServer, fresh_ids: Dict[str, str], path: str, method: str
) -> None:
    """A body over the server's limit (1 MiB here) gets the documented 413 on each operation."""
    body = b'{"data":"' + b"x" * (1 << 20) + b'"}'
    r = requests.request(
        method.upper(),
        server.base_url + path.format(**fresh_ids),
        data=body,
        headers={"Authorization": f"Bearer {key_for(path)}", "Content-Type": "application/json"},
        timeout=ANSWER_DEADLINE_S,
    )
    assert r.status_code == 413, r.text[:300]
    assert_documented(path, method, r)


def test_bystander_is_served_after_the_storm(server: LocalServer) -> None:
    """After everything above, another tenant's calls still work, quickly."""
    r = requests.post(
        server.base_url + "/edge/realtime",
        params={"key": KEY_BYSTANDER},
        json={"channel": "calm", "data": {"ok": True}},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert r.elapsed.total_seconds() < 2


# -- what the fuzzing found, pinned ---------------------------------------------------------------
def _post(server: LocalServer, path: str, body: Any, key: str = KEY_EDGE) -> requests.Response:
    return requests.post(server.base_url + path, params={"key": key}, json=body, timeout=5)


@pytest.mark.parametrize(
    "path,method",
    [
        ("/api/resources", "GET"),
        ("/edge/session", "POST"),
        ("/edge/realtime/history?channel=c", "GET"),
        ("/edge/realtimekit/meetings", "GET"),
    ],
)
@pytest.mark.parametrize("token", [b"\xe9", b"a.\xe9.c", b"\xed\xa0\x80"])
def test_bearer_that_is_not_utf8_is_401(
    server: LocalServer, path: str, method: str, token: bytes
) -> None:
    """Was 500: hashing or JWT-decoding the surrogates aiohttp made of the bytes raised."""
    r = requests.request(
        method, server.base_url + path, headers={"Authorization": b"Bearer " + token}, timeout=5
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"


def test_integral_float_ttl_is_an_integer(server: LocalServer) -> None:
    """Was 400: JSON has one number type, and 259.0 is the integer 259 (schemathesis found it)."""
    r = _post(server, "/edge/realtime/token", {"user_id": 17592186044416.0, "ttl": 259.0})
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 259


def test_nul_in_sql_is_400(server: LocalServer) -> None:
    """Was 500 on Python < 3.11, where sqlite3 raises ValueError for a NUL in the query."""
    r = _post(server, "/edge/database", {"sql": "Q/\u0083\u00d4\u00a5F\u00eb\u0000\u00b6"}, KEY_SQL)
    assert r.status_code == 400, r.text
    assert "null character" in r.json()["error"]["message"]


#: Rows a tenant can write with direct SQL that publish never would.
ODD_ROWS = {
    "blob": ("x'00ff'", "x'ff'", "1", {"event": [0, 255], "data": [255], "created_at_ms": 1}),
    "inf": ("'e'", "'1e999'", "1e999", {"data": "1e999", "created_at_ms": None}),
    "nan": ("'e'", "'NaN'", "1", {"data": "NaN"}),
    "surrogate": ("'e'", "'\"\\ud800\"'", "1", {"data": '"\\ud800"'}),
    "deep": ("'e'", "'[' || replace(hex(zeroblob(3000)), '00', '[') || ']'", "1", {}),
}


@pytest.mark.parametrize("name", sorted(ODD_ROWS))
def test_history_of_rows_direct_sql_wrote_is_never_500(server: LocalServer, name: str) -> None:
    """Was 500: history re-encoded whatever json.loads made of the row, or raw BLOBs."""
    event, data, created, expected = ODD_ROWS[name]
    channel = f"odd:{name}"
    insert = (
        "INSERT INTO realtime_messages (channel, event, data, created_at_ms)"
        f" VALUES ('{channel}', {event}, {data}, {created})"
    )
    assert _post(server, "/edge/database", {"query": insert}).status_code == 200
    r = requests.get(
        server.base_url + "/edge/realtime/history",
        params={"key": KEY_EDGE, "channel": channel},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    (message,) = r.json()["messages"]
    for field, value in expected.items():
        assert message[field] == value, message
    if name == "deep":
        assert isinstance(message["data"], str) and message["data"].startswith("[[[")


@pytest.mark.parametrize("tail", ["/x%0A", "/meetings/a%0Ab/x", "/%0A"])
def test_realtimekit_path_with_a_newline_gets_cloudflare_404(
    server: LocalServer, tail: str
) -> None:
    """Was the app's generic 404, unauthenticated: the catch-all's "." missed the newline."""
    url = server.base_url + "/edge/realtimekit" + tail
    r = requests.put(url, params={"key": KEY_EDGE}, timeout=5)
    assert r.status_code == 404, r.text
    assert r.json()["errors"][0]["code"] == CODE_NO_ROUTE
    assert requests.put(url, timeout=5).status_code == 401
