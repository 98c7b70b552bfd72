"""WebSocket frames: connect, publish, broadcast, error frames, limits (spec: Connect, Publish)."""

from __future__ import annotations

import json
import time

import pytest

from ._wire import Api, Sock, assert_refusal_envelope, refusal, uniq, without_event


def _recent_ms(ms: object) -> None:
    assert isinstance(ms, int) and not isinstance(ms, bool), ms
    assert abs(ms - time.time() * 1000) < 60_000, ms


def test_connect_frames(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice", name="Alice"), ch) as s:
        assert without_event(s.connected) == {"action": "connected", "channel": ch}
        assert without_event(s.subscribed) == {
            "action": "subscribed",
            "channel": ch,
            "presence": [{"id": "alice", "name": "Alice"}],
        }


def test_publish_ack_and_broadcast_to_every_subscriber_including_sender(
    api_a: Api, base_url: str
) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a, Sock(base_url, api_a.token("bob"), ch) as b:
        a.send({"action": "publish", "event": "message", "data": {"text": "hello"}})
        ack = a.until(lambda f: f.get("action") == "published")
        assert ack["event"] == "published"
        assert ack["channel"] == ch
        _recent_ms(ack["created_at_ms"])
        assert isinstance(ack["id"], int) and ack["id"] > 0  # DESIGN §2: id on persisted acks
        assert "error" not in ack
        want = {
            "action": "message",
            "event": "message",
            "channel": ch,
            "data": {"text": "hello"},
            "created_at_ms": ack["created_at_ms"],
            "id": ack["id"],
        }
        assert a.message() == want
        assert b.message() == want
        # exactly once: the next frame each side sees is the next publication
        a.publish({"text": "second"})
        assert a.message()["data"] == {"text": "second"}
        assert b.message()["data"] == {"text": "second"}


def test_event_defaults_to_message(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a:
        ack = a.publish({"n": 1})  # no "event"
        frame = a.message()
        assert frame["event"] == frame["action"] == "message"
        assert frame["id"] == ack["id"]
    [row] = api_a.history_ok(ch)
    assert row["event"] == row["action"] == "message"


@pytest.mark.parametrize("event", ["reaction", "typing", "read", "dm_request", "update"])
def test_custom_event_action_equals_event_live_and_in_history(
    api_a: Api, base_url: str, event: str
) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a, Sock(base_url, api_a.token("bob"), ch) as b:
        a.publish({"e": event}, event=event)
        for s in (a, b):
            frame = s.message()
            assert frame["action"] == frame["event"] == event, frame
    [row] = api_a.history_ok(ch)
    assert row["action"] == row["event"] == event


def test_persist_false_is_broadcast_without_id_and_not_stored(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a, Sock(base_url, api_a.token("bob"), ch) as b:
        ack = a.publish({"user": "Alice"}, event="typing", persist=False)
        assert ack["action"] == ack["event"] == "published"
        assert ack["channel"] == ch
        _recent_ms(ack["created_at_ms"])
        assert "id" not in ack
        frame = b.message()
        assert frame == {
            "action": "typing",
            "event": "typing",
            "channel": ch,
            "data": {"user": "Alice"},
            "created_at_ms": ack["created_at_ms"],
        }
        assert "id" not in a.message()
    assert api_a.history_ok(ch) == []
    assert api_a.sql_rows("SELECT count(*) AS n FROM realtime_messages WHERE channel=?", [ch]) == [
        {"n": 0}
    ]


@pytest.mark.parametrize(
    "data",
    ["plain string", 0, 3.5, False, [1, "two", {"three": 3}], {"nested": {"ü": "日本", "e": "😀"}}],
)
def test_any_json_data_roundtrips_live_and_in_history(
    api_a: Api, base_url: str, data: object
) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a:
        ack = a.publish(data)
        assert a.message()["data"] == data
    [row] = api_a.history_ok(ch)
    assert row["data"] == data
    assert row["id"] == ack["id"]


def _alive(s: Sock, tag: str) -> None:
    """The socket still publishes (and receives) after a bad frame."""
    ack = s.publish({"alive": tag})
    assert ack["action"] == "published"
    assert s.message(lambda f: f["data"] == {"alive": tag})


@pytest.mark.parametrize(
    "raw,error",
    [
        ("not json", "Invalid JSON"),
        ("{", "Invalid JSON"),
        ('{"action": "publish", "data": }', "Invalid JSON"),
        ('{"action": "foo"}', 'Unknown action: "foo". Use: publish'),
        ('{"action": "subscribe", "channel": "x"}', 'Unknown action: "subscribe". Use: publish'),
        ('{"action": "unsubscribe"}', 'Unknown action: "unsubscribe". Use: publish'),
        ('{"action": "publish"}', 'publish requires "data"'),
        ('{"action": "publish", "event": "message"}', 'publish requires "data"'),
    ],
)
def test_error_frames_exact_and_socket_stays_open(
    api_a: Api, base_url: str, raw: str, error: str
) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a, Sock(base_url, api_a.token("bob"), ch) as b:
        a.send(raw)
        assert a.reply() == {"error": error}
        _alive(a, "after")
        # the peer saw nothing from the bad frame: its next publication is the good one
        assert b.message()["data"] == {"alive": "after"}
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"alive": "after"}]


# Assumption: JSON that is not an object (or lacks "action") is answered with *some* error frame.
@pytest.mark.parametrize("raw", ["[1, 2]", '"publish"', "42", "null", "true", '{"data": {}}'])
def test_non_object_or_actionless_frames_get_an_error_frame(
    api_a: Api, base_url: str, raw: str
) -> None:
    with Sock(base_url, api_a.token("alice"), uniq()) as a:
        a.send(raw)
        frame = a.next()
        assert set(frame) == {"error"} and isinstance(frame["error"], str), frame
        _alive(a, "after")


def test_binary_frame_does_not_kill_the_socket(api_a: Api, base_url: str) -> None:
    with Sock(base_url, api_a.token("alice"), uniq()) as a:
        a.ws.send_binary(b'{"action":"publish","data":{"b":1}}\xff\x00')
        # an error frame in answer is fine; the socket must keep working either way
        a.send({"action": "publish", "data": {"alive": "after-binary"}})
        ack = a.until(lambda f: f.get("action") == "published")
        assert "id" in ack
        assert a.message(lambda f: f["data"] == {"alive": "after-binary"})
        for frame in a.backlog:
            assert set(frame) == {"error"} or frame.get("data") == {"b": 1}, frame


def test_payload_over_max_is_error_frame_and_socket_lives(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a, Sock(base_url, api_a.token("bob"), ch) as b:
        a.send({"action": "publish", "data": {"blob": "x" * 70_000}})
        frame = a.reply(timeout=10)
        assert set(frame) == {"error"} and isinstance(frame["error"], str), frame
        _alive(a, "after-big")
        assert b.message()["data"] == {"alive": "after-big"}
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"alive": "after-big"}]


def test_megabyte_frame_is_error_frame_and_socket_lives(api_a: Api, base_url: str) -> None:
    """Far over max_payload: still a bad frame like any other (DESIGN §2: socket stays open)."""
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a:
        a.send({"action": "publish", "data": {"blob": "x" * 1_000_000}})
        frame = a.reply(timeout=10)
        assert set(frame) == {"error"}, frame
        _alive(a, "after-megabyte")
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"alive": "after-megabyte"}]


def test_payload_under_max_is_accepted(api_a: Api, base_url: str) -> None:
    ch = uniq()
    data = {"blob": "y" * 60_000}
    with Sock(base_url, api_a.token("alice"), ch) as a:
        a.publish(data)
        assert a.message()["data"] == data
    assert api_a.history_ok(ch)[0]["data"] == data


@pytest.mark.parametrize("channel", ["", "c" * 257, "c" * 1000])
def test_bad_channel_name_refused_before_upgrade(api_a: Api, base_url: str, channel: str) -> None:
    status, body, _ = refusal(base_url, token=api_a.token("alice"), channel=channel)
    assert status == 400, (status, body)
    assert_refusal_envelope(400, body)


def test_missing_channel_refused_before_upgrade(api_a: Api, base_url: str) -> None:
    status, body, _ = refusal(base_url, token=api_a.token("alice"))
    assert status == 400, (status, body)
    assert_refusal_envelope(400, body)


def test_channel_name_of_256_chars_is_fine(api_a: Api, base_url: str) -> None:
    ch = "c:" + "x" * 254
    with Sock(base_url, api_a.token("alice"), ch) as a:
        assert without_event(a.connected) == {"action": "connected", "channel": ch}
        a.publish({"n": 1})
    assert len(api_a.history_ok(ch)) == 1


def test_unicode_channel_name(api_a: Api, base_url: str) -> None:
    ch = uniq("salle:été/日本 #1")
    with Sock(base_url, api_a.token("alice"), ch) as a:
        assert a.subscribed["channel"] == ch
        ack = a.publish({"n": 1})
        assert ack["channel"] == ch
    assert api_a.history_ok(ch)[0]["channel"] == ch


def test_one_channel_per_socket(api_a: Api, base_url: str) -> None:
    """A socket only gets its own channel's publications."""
    c1, c2 = uniq(), uniq()
    tok = api_a.token("alice")
    with Sock(base_url, tok, c1) as s1, Sock(base_url, tok, c2) as s2:
        api_a.publish_ok(c2, {"to": "c2"})
        api_a.publish_ok(c1, {"to": "c1"})
        assert s1.message()["data"] == {"to": "c1"}
        assert s2.message()["data"] == {"to": "c2"}
        s1.publish({"again": 1})
        api_a.publish_ok(c2, {"to": "c2", "n": 2})
        assert s2.message()["data"] == {"to": "c2", "n": 2}


def test_publish_extra_fields_cannot_change_identity_or_channel(api_a: Api, base_url: str) -> None:
    """Spec: the channel is chosen at connect and identity comes from the token."""
    ch, other = uniq(), uniq()
    with (
        Sock(base_url, api_a.token("alice"), ch) as a,
        Sock(base_url, api_a.token("x"), other) as o,
    ):
        ack = a.publish({"n": 1}, channel=other, user={"id": "root"})
        assert ack["channel"] == ch
        assert a.message()["channel"] == ch
        api_a.publish_ok(other, {"marker": 1})
        assert o.message()["data"] == {"marker": 1}
    assert [m["data"] for m in api_a.history_ok(other)] == [{"marker": 1}]


def test_frames_are_json_text(api_a: Api, base_url: str) -> None:
    with Sock(base_url, api_a.token("alice"), uniq(), handshake=False) as s:
        s.ws.settimeout(5)
        raw = s.ws.recv()
        assert isinstance(raw, str)
        assert json.loads(raw)["action"] == "connected"


def test_payload_limit_counts_utf8_bytes_not_characters(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a:
        a.send({"action": "publish", "data": {"blob": "é" * 40_000}})
        frame = a.reply()
        assert set(frame) == {"error"}, frame
        _alive(a, "after-utf8")
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"alive": "after-utf8"}]


def test_ping_gets_pong(api_a: Api, base_url: str) -> None:
    """Clients keep sockets alive with WebSocket pings; the server answers each with a pong."""
    import websocket

    with Sock(base_url, api_a.token("alice"), uniq()) as a:
        a.ws.ping(b"keepalive-1")
        a.ws.settimeout(5)
        while True:
            opcode, frame = a.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_PONG:
                assert frame.data == b"keepalive-1"
                break
        _alive(a, "after-ping")
