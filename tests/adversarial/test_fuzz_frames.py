"""Hypothesis-generated WebSocket frames on a real socket, each answered exactly as specified.

tests/server/test_robustness.py sends a fixed list of nasty frames and a
seeded random loop, and checks that the socket survives. This goes further:
hypothesis builds batches of text and binary frames (arbitrary unicode and
bytes, and JSON built from random actions, events, data and persist values,
with huge numbers, deep nesting, lone surrogates escaped as \\ud800, NaN and
truncations), and a model of the spec's rules says what the one answer to
each frame must be: the ``published`` ack, or the exact ``{"error": ...}``.
The test checks that the server sends exactly those answers, in order, each
followed by the sender's own copy of a published message; that a watcher on
the channel gets exactly the published messages, in order; that every frame
matches the OpenAPI document's frame schemas; and that the socket, and
another tenant, are still served afterwards.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import urlencode

import jsonschema
import pytest
import requests
import websocket
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cohrt_sync.server import LocalServer

from ._openapi import DOCUMENT

KEY = "kw_fuzzframes_8e7d6c5b4a39"
KEY_OTHER = "ko_fuzzframes_2b3c4d5e6f70"
#: Small, so that generated data crosses it often.
MAX_PAYLOAD = 2048
CHANNEL = "fuzz:frames"
TIMEOUT_S = 10.0

Frame = Union[str, bytes]
#: What the server must answer to one frame: ("published", the parsed message) or
#: ("error", the exact text).
Expected = Tuple[str, Any]

# -- the frame schemas of the OpenAPI document ---------------------------------------------------
_REGISTRY = Registry().with_resource(
    "urn:cohrt-openapi", Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    ref = {"$ref": f"urn:cohrt-openapi#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(ref, registry=_REGISTRY)


PUBLISHED_FRAME = _validator("PublishedFrame")
ERROR_FRAME = _validator("ErrorFrame")
MESSAGE_FRAME = _validator("MessageFrame")


# -- the model: what the spec (and docs/server.md) says the answer is ---------------------------
def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reject(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _encodable(value: Any) -> bool:
    """No lone surrogate anywhere: what can't be UTF-8 isn't JSON another parser reads."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    return True


def expected_answer(frame: Frame) -> Expected:
    """The one answer the spec's rules give ``frame``."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            return ("error", "Invalid JSON")
    try:
        msg = json.loads(frame, parse_constant=_reject, parse_float=_finite)
    except (ValueError, RecursionError):
        return ("error", "Invalid JSON")
    if not _encodable(msg):
        return ("error", "Invalid JSON")
    action = msg.get("action") if isinstance(msg, dict) else None
    if action != "publish":
        shown = (
            "undefined"
            if action is None
            else action
            if isinstance(action, str)
            else _compact(action)
        )
        return ("error", f'Unknown action: "{shown}". Use: publish')
    if "data" not in msg:
        return ("error", 'publish requires "data"')
    event = msg.get("event")
    if event is not None and not (isinstance(event, str) and 0 < len(event) <= 128):
        return ("error", '"event" must be a non-empty string of at most 128 characters')
    persist = msg.get("persist")
    if persist is not None and not isinstance(persist, bool):
        return ("error", '"persist" must be a boolean')
    size = len(_compact(msg["data"]).encode("utf-8"))
    if size > MAX_PAYLOAD:
        return ("error", f"Message too large: {size} bytes (max {MAX_PAYLOAD})")
    return ("published", msg)


# -- strategies ---------------------------------------------------------------------------------
_HUGE = [2**63, -(2**63) - 1, 2**64, 10**300, -(10**4000), 1e308, -1e308, 5e-324, -0.0, 2.0**53 + 2]
# Indexed, not sampled_from(_HUGE): hypothesis prints a strategy's repr on failure.
HUGE_NUMBERS = st.sampled_from(range(len(_HUGE))).map(lambda i: _HUGE[i])
#: Any character, lone surrogates included (they are sent escaped, as \ud800).
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_NUMBERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | ANY_TEXT
    | st.integers(MAX_PAYLOAD - 8, MAX_PAYLOAD + 8).map(lambda n: "x" * n)
)
JSON = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(ANY_TEXT, kids, max_size=4),
    max_leaves=12,
)


def _nest(value: Any, depth: int) -> str:
    # Built as text: the test's own json.dumps would hit the recursion limit too.
    return "[" * depth + json.dumps(value) + "]" * depth


#: Nesting either well inside the decoders' recursion limit or far beyond it.
NESTED = st.tuples(JSON, st.integers(1, 150) | st.integers(5000, 20000)).map(lambda t: _nest(*t))
MISSING = object()


@st.composite
def messages(draw: st.DrawFn) -> Dict[str, Any]:
    """A JSON object close to a publish frame: random action, event, data, persist."""
    msg: Dict[str, Any] = {}
    # Each field valid (or absent where optional) three times in four.
    fields = {
        "action": _mostly(st.just("publish"), st.sampled_from(["PUBLISH", "subscribe", ""]) | JSON),
        "data": _mostly(JSON, st.just(MISSING)),
        "event": _mostly(
            st.sampled_from([MISSING, None, "message", "typing", "e" * 128]),
            st.sampled_from(["e" * 129, ""]) | JSON,
        ),
        "persist": _mostly(st.sampled_from([MISSING, None, True, False]), JSON),
    }
    for name, values in fields.items():
        value = draw(values)
        if value is not MISSING:
            msg[name] = value
    msg.update(draw(st.dictionaries(ANY_TEXT, JSON, max_size=2)))
    return msg


def _mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four (one_of would split evenly over all branches)."""
    return st.integers(0, 3).flatmap(lambda i: other if i == 3 else usual)


def _serialize(msg: Any, raw: bool) -> str:
    if raw:
        text = json.dumps(msg, ensure_ascii=False)
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return json.dumps(msg)  # lone surrogates become \ud800 escapes


@st.composite
def mangled(draw: st.DrawFn) -> str:
    """A publish frame with a lax-JSON token, a truncation or trailing junk."""
    text = _serialize(draw(messages()), draw(st.booleans()))
    how = draw(st.sampled_from(["token", "truncate", "junk", "bom"]))
    if how == "token":
        token = draw(
            st.sampled_from(
                ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", '"\\ud800"', "undefined"]
            )
        )
        return text[:-1] + f',"data":{token}' + "}" if text.endswith("}") else token
    if how == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if how == "junk":
        return text + draw(st.sampled_from(["}", ",", " x", "{}", "\x00"]))
    return "\ufeff" + text


PUBLISH_FRAMES = st.tuples(messages(), st.booleans()).map(lambda t: _serialize(*t))
OTHER_FRAMES = st.one_of(
    PUBLISH_FRAMES.map(lambda t: t.encode("utf-8")),  # JSON in a binary frame is read as text
    mangled(),
    JSON.map(json.dumps),
    NESTED,
    NESTED.map(lambda text: '{"action":"publish","data":' + text + "}"),
    st.text(max_size=60),
    st.binary(max_size=200),
    st.binary(min_size=1, max_size=8).map(lambda b: b'{"action":"publish","data":"' + b + b'"}'),
)
BATCHES = st.lists(_mostly(PUBLISH_FRAMES, OTHER_FRAMES), min_size=1, max_size=6)


# -- the sockets ------------------------------------------------------------------------------
class Socket:
    """One WebSocket on one channel, read frame by frame with a deadline."""

    def __init__(self, server: LocalServer, key: str, user: str, channel: str) -> None:
        r = requests.post(
            server.base_url + "/edge/realtime/token",
            params={"key": key},
            json={"user_id": user},
            timeout=5,
        )
        query = urlencode({"token": r.json()["token"], "channel": channel})
        self.channel = channel
        self.ws = websocket.create_connection(
            f"{server.ws_url}/edge/realtime?{query}", timeout=TIMEOUT_S
        )
        assert self.read()["action"] == "connected"
        assert self.read()["action"] == "subscribed"

    def read(self) -> Dict[str, Any]:
        raw = self.ws.recv()
        assert isinstance(raw, str), raw
        frame = json.loads(raw, parse_constant=_reject)
        assert isinstance(frame, dict), raw
        return frame

    def send(self, frame: Frame) -> None:
        if isinstance(frame, bytes):
            self.ws.send_binary(frame)
        else:
            self.ws.send(frame)

    def close(self) -> None:
        self.ws.close(timeout=2)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(keys=[KEY, KEY_OTHER], provision=True, max_payload=MAX_PAYLOAD) as srv:
        yield srv


@pytest.fixture(scope="module")
def bystander(server: LocalServer) -> Iterator[Socket]:
    """Another tenant's socket on the channel name the last test fuzzes."""
    sock = Socket(server, KEY_OTHER, "bystander", CHANNEL)
    yield sock
    sock.close()


def _pair(server: LocalServer, channel: str) -> Tuple[Socket, Socket]:
    # The watcher first, so the fuzzer's own stream holds no presence frame.
    watcher = Socket(server, KEY, "watcher", channel)
    fuzzer = Socket(server, KEY, "fuzzer", channel)
    assert watcher.read()["action"] == "join"
    return fuzzer, watcher


def _check_message(frame: Dict[str, Any], msg: Dict[str, Any], channel: str) -> None:
    MESSAGE_FRAME.validate(frame)
    event = msg.get("event") or "message"
    assert frame["event"] == frame["action"] == event, frame
    assert frame["channel"] == channel
    assert frame["data"] == msg["data"], frame
    assert ("id" in frame) == (msg.get("persist") is not False), frame


def send_and_check(fuzzer: Socket, watcher: Socket, batch: List[Frame]) -> List[str]:
    """Send ``batch``; every answer is the specified one, in order, and nothing else comes.

    :returns: what each frame got, for hypothesis' statistics.
    """
    for frame in batch:
        fuzzer.send(frame)
    published: List[Dict[str, Any]] = []
    outcomes: List[str] = []
    last_id: Optional[int] = None
    for frame in batch:
        kind, want = expected_answer(frame)
        outcomes.append(kind if kind == "published" else want.split(":")[0])
        got = fuzzer.read()
        if kind == "error":
            ERROR_FRAME.validate(got)
            assert got == {"error": want}, (frame[:200], got)
            continue
        PUBLISHED_FRAME.validate(got)
        assert got["action"] == "published" and got["channel"] == fuzzer.channel, got
        persisted = want.get("persist") is not False
        assert ("id" in got) == persisted, (frame[:200], got)
        if persisted:
            assert last_id is None or got["id"] > last_id, got
            last_id = got["id"]
        # The sender's own copy comes right after its ack, and carries the same id.
        own = fuzzer.read()
        _check_message(own, want, fuzzer.channel)
        assert own.get("id") == got.get("id"), (got, own)
        published.append(want)
    for want in published:
        _check_message(watcher.read(), want, watcher.channel)
    return outcomes


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(batch=BATCHES)
def test_every_frame_gets_its_one_specified_answer(server: LocalServer, batch: List[Frame]) -> None:
    # Fresh sockets each time, so that one example's failure can't shift the next one's frames.
    fuzzer, watcher = _pair(server, f"fuzz:{uuid.uuid4().hex[:12]}")
    try:
        for outcome in send_and_check(fuzzer, watcher, batch):
            event(outcome)
        # Still open and serving after the batch: a good frame gets its ack.
        send_and_check(fuzzer, watcher, ['{"action":"publish","data":"still open"}'])
    finally:
        fuzzer.close()
        watcher.close()


def test_other_tenants_are_still_served(server: LocalServer, bystander: Socket) -> None:
    """After the storm, on the bystander's channel name: nothing crosses to it, and it is served."""
    fuzzer, watcher = _pair(server, CHANNEL)
    try:
        send_and_check(fuzzer, watcher, ['{"action":"publish","data":{"leak":1}}', "\x00", b"\xff"])
    finally:
        fuzzer.close()
        watcher.close()
    r = requests.post(
        server.base_url + "/edge/realtime",
        params={"key": KEY_OTHER},
        json={"channel": CHANNEL, "data": {"other": "tenant"}},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert r.elapsed.total_seconds() < 2
    # The first frame the bystander gets is its own tenant's message: nothing leaked over.
    assert bystander.read()["data"] == {"other": "tenant"}
