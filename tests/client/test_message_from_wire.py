"""Message.from_wire, the constructor every live frame and history row goes through."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from cohrt_sync.models import Message


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
        ({"data": 1, "created_at_ms": 12.9, "id": True}, Message("fallback", "message",
                                                                  "message", 1, 12, None)),
        ({"data": 1, "created_at_ms": "5", "id": "7"}, Message("fallback", "message",
                                                                "message", 1, None, None)),
        ({"data": 1, "id": Id(8)}, Message("fallback", "message", "message", 1, None, 8)),
    ],
)
def test_from_wire_reads_each_field_and_falls_back_as_documented(
    raw: Dict[str, Any], expected: Message
) -> None:
    got = Message.from_wire(raw, "fallback")
    assert got == expected
    assert type(got.id) in (int, type(None))
    assert all(type(v) is str for v in (got.channel, got.event, got.action))
