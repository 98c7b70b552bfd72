"""HTTP publish: POST /edge/realtime (spec: Publish (HTTP); DESIGN §2 ack after commit)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from ._wire import Api, Sock, assert_envelope, uniq
from .conftest import make_server


def test_publish_with_key_response_and_live_frame(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as s:
        r = api_a.publish(ch, {"text": "hello"}, event="message")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["channel"] == ch
        assert body["action"] == body["event"] == "message"
        assert isinstance(body["created_at_ms"], int)
        assert abs(body["created_at_ms"] - time.time() * 1000) < 60_000
        assert isinstance(body["id"], int) and body["id"] > 0
        assert s.message() == {
            "action": "message",
            "event": "message",
            "channel": ch,
            "data": {"text": "hello"},
            "created_at_ms": body["created_at_ms"],
            "id": body["id"],
        }
    [row] = api_a.history_ok(ch)
    assert row["id"] == body["id"] and row["data"] == {"text": "hello"}


def test_publish_with_session_bearer(api_a: Api) -> None:
    ch = uniq()
    r = api_a.publish(ch, {"n": 1}, event="update", bearer=api_a.session())
    assert r.status_code == 200, r.text
    assert r.json()["action"] == r.json()["event"] == "update"


def test_event_defaults_to_message(api_a: Api) -> None:
    ch = uniq()
    body = api_a.publish_ok(ch, {"n": 1})
    assert body["action"] == body["event"] == "message"
    assert api_a.history_ok(ch)[0]["event"] == "message"


def test_dm_request_pattern_from_spec(api_a: Api, base_url: str) -> None:
    user_ch = uniq("user")
    with Sock(base_url, api_a.token("42"), user_ch) as s:
        data = {"from": "alice", "dm_channel": "dm:1_42"}
        api_a.publish_ok(user_ch, data, event="dm_request")
        frame = s.message()
        assert frame["action"] == frame["event"] == "dm_request"
        assert frame["channel"] == user_ch and frame["data"] == data


def test_persist_false_has_no_id_and_is_not_stored(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as s:
        body = api_a.publish_ok(ch, {"cursor": [1, 2]}, event="cursor", persist=False)
        assert "id" not in body
        assert body["action"] == body["event"] == "cursor"
        frame = s.message()
        assert frame["data"] == {"cursor": [1, 2]} and "id" not in frame
    assert api_a.history_ok(ch) == []


def test_no_live_ids_leaves_id_out_of_every_answer_but_history(tmp_path: Any) -> None:
    key, ch = "k_no_live_ids", uniq()
    with make_server(keys=[key], live_ids=False, data_dir=str(tmp_path)) as srv:
        api = Api(srv.base_url, key)
        with Sock(srv.base_url, api.token("alice"), ch) as s:
            first = api.publish(ch, {"n": 1}, headers={"Idempotency-Key": "k1"})
            replay = api.publish(ch, {"n": 1}, headers={"Idempotency-Key": "k1"})
            assert first.status_code == replay.status_code == 200
            assert "id" not in first.json() and replay.json() == first.json()
            assert "id" not in s.message()
            assert "id" not in s.publish({"n": 2})
        assert [isinstance(m["id"], int) for m in api.history_ok(ch)] == [True, True]
    # After a restart the replay reads the ack stored with the row: no id either.
    with make_server(keys=[key], live_ids=False, data_dir=str(tmp_path)) as srv:
        replay = Api(srv.base_url, key).publish(ch, {"n": 1}, headers={"Idempotency-Key": "k1"})
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.json() == first.json()


def test_ids_increase_across_publishes(api_a: Api) -> None:
    ch = uniq()
    ids = [api_a.publish_ok(ch, {"i": i})["id"] for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_idempotency_key_dedupes(api_a: Api, base_url: str) -> None:
    ch = uniq()
    key = uuid.uuid4().hex
    with Sock(base_url, api_a.token("alice"), ch) as s:
        r1 = api_a.publish(ch, {"pay": 1}, headers={"Idempotency-Key": key})
        r2 = api_a.publish(ch, {"pay": 1}, headers={"Idempotency-Key": key})
        assert r1.status_code == r2.status_code == 200, (r1.text, r2.text)
        assert r1.json() == r2.json()
        assert s.message()["data"] == {"pay": 1}
        # broadcast once: the next publication the socket sees is the marker
        api_a.publish_ok(ch, {"marker": 1}, persist=False)
        assert s.message()["data"] == {"marker": 1}
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"pay": 1}]
    # a different key is a different publication
    r3 = api_a.publish(ch, {"pay": 1}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r3.status_code == 200 and r3.json()["id"] != r1.json()["id"]
    assert len(api_a.history_ok(ch)) == 2


def test_idempotency_key_is_per_tenant(api_a: Api, api_b: Api) -> None:
    ch = uniq()
    key = uuid.uuid4().hex
    ra = api_a.publish(ch, {"who": "a"}, headers={"Idempotency-Key": key})
    rb = api_b.publish(ch, {"who": "b"}, headers={"Idempotency-Key": key})
    assert ra.status_code == rb.status_code == 200
    assert [m["data"] for m in api_a.history_ok(ch)] == [{"who": "a"}]
    assert [m["data"] for m in api_b.history_ok(ch)] == [{"who": "b"}]


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "c:x"},  # no data
        {"data": {"a": 1}},  # no channel
        {"channel": "", "data": {}},
        {"channel": "c" * 257, "data": {}},
        {"channel": 123, "data": {}},
        {"channel": None, "data": {}},
        {"channel": ["c:x"], "data": {}},
    ],
)
def test_bad_publish_body_is_400(api_a: Api, body: dict) -> None:
    r = api_a.request("POST", "/edge/realtime", params={"key": api_a.key}, json=body)
    assert_envelope(r, 400)


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'"x"', b"", b"\xff\xfe"])
def test_non_object_publish_body_is_400(api_a: Api, raw: bytes) -> None:
    r = api_a.post_raw("/edge/realtime", raw)
    assert_envelope(r, 400)


def test_channel_of_256_chars_is_fine(api_a: Api) -> None:
    ch = "h:" + "z" * 254
    api_a.publish_ok(ch, {"n": 1})
    assert len(api_a.history_ok(ch)) == 1


def test_payload_over_max_is_413(api_a: Api) -> None:
    ch = uniq()
    r = api_a.publish(ch, {"blob": "x" * 70_000})
    assert_envelope(r, 413, "INVALID_ARGUMENT")
    assert api_a.history_ok(ch) == []


def test_payload_under_max_is_accepted(api_a: Api) -> None:
    ch = uniq()
    api_a.publish_ok(ch, {"blob": "x" * 60_000})
    assert len(api_a.history_ok(ch)[0]["data"]["blob"]) == 60_000


def test_huge_body_is_413_not_a_crash(api_a: Api) -> None:
    ch = uniq()
    r = api_a.publish(ch, {"blob": "x" * 5_000_000})
    assert_envelope(r, 413, "INVALID_ARGUMENT")
    api_a.publish_ok(ch, {"still": "alive"})


def test_idempotency_key_dedupes_concurrent_retries(api_a: Api) -> None:
    """Ten simultaneous retries of one request (same Idempotency-Key): published once."""
    import threading

    ch = uniq()
    key = uuid.uuid4().hex
    barrier = threading.Barrier(10)
    results: list = []

    def go() -> None:
        own = Api(api_a.base_url, api_a.key)
        barrier.wait(timeout=10)
        r = own.publish(ch, {"once": True}, headers={"Idempotency-Key": key})
        results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=go) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 10
    assert {code for code, _ in results} == {200}, results
    assert len({str(body) for _, body in results}) == 1, results
    assert len(api_a.history_ok(ch)) == 1


def test_payload_limit_counts_utf8_bytes_not_characters(api_a: Api) -> None:
    """40 000 "é" are 40 000 characters but 80 000 bytes: over the 64 KiB limit."""
    ch = uniq()
    assert_envelope(api_a.publish(ch, {"blob": "é" * 40_000}), 413, "INVALID_ARGUMENT")
    assert api_a.history_ok(ch) == []


def test_every_answer_says_publish_deduplicates_idempotency_keys(
    api_a: Api, base_url: str
) -> None:
    """The client retries a publish that may have been applied only where a server
    says it deduplicates (``Idempotent-Publish``: how long a key is remembered)."""
    ch = uniq()
    answers = [
        api_a.publish(ch, {"n": 1}),
        api_a.publish(ch, {"n": 1}, bearer=api_a.session()),
        api_a.publish(ch, {"n": 1}, headers={"Idempotency-Key": "k" * 300}),  # a 400
        requests.get(f"{base_url}/edge/realtime/history", params={"channel": ch}, timeout=5),
        requests.get(f"{base_url}/no/such/path", timeout=5),
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 401, 404]
    assert {a.headers.get("Idempotent-Publish") for a in answers} == {"86400"}
