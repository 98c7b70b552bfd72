"""Frames that are not this channel's next message are dropped with a warning."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import cohrt_sync

from ._server import HostileServer
from .conftest import Recorder

NOT_MESSAGES = [
    {},
    {"action": 123, "data": 1},
    {"action": None, "data": 1},
    {"action": ["message"], "data": 1},
    {"event": "message", "data": 1},
    {"action": "message"},
    {"action": "message", "event": 7, "data": 1},
]
# A frame with data and a string action is a publication even when its event
# is named like a protocol action: tests/client/test_events_named_like_actions.py.


def test_frames_that_are_not_messages_never_reach_on_message(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    with caplog.at_level(logging.WARNING, "cohrt_sync.channel"):
        for frame in NOT_MESSAGES:
            hostile.send_all(frame)
        ch.publish({"n": 1})
        recorder.wait_for(lambda: recorder.messages())
    assert [m.data for m in recorder.messages()] == [{"n": 1}]
    assert sum("dropped" in r.getMessage() for r in caplog.records) >= len(NOT_MESSAGES)


def test_a_live_frame_of_another_channel_is_dropped_and_reported(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    hostile.send_all({"action": "message", "event": "message", "channel": "chat:other",
                      "data": {"secret": 1}, "created_at_ms": 1})
    ch.publish({"n": 1})
    recorder.wait_for(lambda: recorder.messages())
    assert [m.data for m in recorder.messages()] == [{"n": 1}]
    errors = [e[2] for e in recorder.of("error")]
    assert errors and isinstance(errors[0], cohrt_sync.ProtocolError)
    assert "another channel" in str(errors[0])


BAD_USERS = [None, ["a", "b"], {"id": None}, {"id": ["a", "b"]}, {"id": True}, {"id": ""},
             {"name": "nobody"}, "bob"]


def test_presence_entries_of_the_wrong_shape_invent_no_users(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    hostile.presence_extra = [*BAD_USERS, {"id": "bob", "name": "Bob"}]
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    assert sorted(ch.presence) == ["alice", "bob"]
    for user in BAD_USERS:
        hostile.send_all({"action": "join", "channel": channel_name, "user": user})
        hostile.send_all({"action": "leave", "channel": channel_name, "user": user})
    hostile.send_all({"action": "leave", "channel": channel_name})
    hostile.send_all({"action": "join", "channel": channel_name, "user": {"id": 7, "name": 5}})
    recorder.wait_for(lambda: recorder.of("join"))
    ch.publish({"n": 1})
    recorder.wait_for(lambda: recorder.messages())
    assert [e[2] for e in recorder.of("join")] == [cohrt_sync.User(id="7", name=None)]
    assert recorder.of("leave") == []
    assert sorted(ch.presence) == ["7", "alice", "bob"]
