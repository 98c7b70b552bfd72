"""Message.from_wire, the constructor every live frame and history row goes through."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

import cohrt_sync
from cohrt_sync.models import MAX_CREATED_AT_MS, MAX_ID, Message, PublishAck


class Id(int):
    """An int subclass (as some JSON decoders produce)."""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"action": "message", "event": "message", "channel": "c", "data": {"a": 1},
          "created_at_ms": 5, "id": 7}, Message("c", "message", "message", {"a": 1}, 5, 7)),
        ({"action": "typing", "data": None}, Message("fallback", "typing", "typing", None)),
        ({"event": "", "action": "x", "data": 1}, Message("fallback", "x", "x", 1)),
        ({"event": "e", "data": 1}, Message("fallback", "e", "e", 1)),
        ({"data": 1}, Message("fallback", "message", "message", 1)),
        ({"event": 3, "action": 4, "channel": 9, "data": 1}, Message("9", "3", "4", 1)),
        ({"data": 1, "created_at_ms": 12.9}, Message("fallback", "message", "message", 1, 12)),
        ({"data": 1, "created_at_ms": None, "id": None}, Message("fallback", "message",
                                                                  "message", 1)),
        ({"data": 1, "id": Id(8)}, Message("fallback", "message", "message", 1, None, 8)),
        ({"data": 1, "created_at_ms": MAX_CREATED_AT_MS, "id": MAX_ID},
         Message("fallback", "message", "message", 1, MAX_CREATED_AT_MS, MAX_ID)),
    ],
)
def test_from_wire_reads_each_field_and_falls_back_as_documented(
    raw: Dict[str, Any], expected: Message
) -> None:
    got = Message.from_wire(raw, "fallback")
    assert got == expected
    assert type(got.id) in (int, type(None))
    assert all(type(v) is str for v in (got.channel, got.event, got.action))


#: Numbers a JSON decoder hands over that no id or timestamp can be:
#: ``1e400`` and ``-1e400`` decode as infinities, ``NaN`` as NaN.
BAD_NUMBERS = [
    ("created_at_ms", "1e400"),
    ("created_at_ms", "-1e400"),
    ("created_at_ms", "NaN"),
    ("created_at_ms", str(MAX_CREATED_AT_MS + 1)),
    ("created_at_ms", "-1"),
    ("created_at_ms", "1" + "0" * 400),
    ("created_at_ms", '"5"'),
    ("created_at_ms", "true"),
    ("id", "1e400"),
    ("id", "7.5"),
    ("id", "7.0"),
    ("id", str(MAX_ID + 1)),
    ("id", "1" + "0" * 400),
    ("id", "0"),
    ("id", "-3"),
    ("id", "true"),
    ("id", '"7"'),
]


@pytest.mark.parametrize(("field", "text"), BAD_NUMBERS)
def test_a_number_no_id_or_time_can_be_is_refused_not_overflowed(field: str, text: str) -> None:
    raw = json.loads(f'{{"action": "message", "data": 1, "{field}": {text}}}')
    with pytest.raises(cohrt_sync.ProtocolError, match=field):
        Message.from_wire(raw, "c")


@pytest.mark.parametrize(("field", "text"), BAD_NUMBERS)
def test_an_ack_leaves_out_a_number_out_of_range(field: str, text: str) -> None:
    raw = json.loads(f'{{"action": "published", "channel": "c", "{field}": {text}}}')
    ack = PublishAck.from_wire(raw, "c", "message")
    assert getattr(ack, field) is None


def test_an_ack_describes_the_message_on_both_paths() -> None:
    socket_ack = PublishAck.from_wire(
        {"action": "published", "event": "typing", "channel": "c", "created_at_ms": 5}, "c",
        "typing",
    )
    http_ack = PublishAck.from_wire(
        {"action": "typing", "event": "typing", "channel": "c", "created_at_ms": 5}, "c", "typing"
    )
    assert socket_ack == http_ack == PublishAck("c", "typing", "typing", 5)
