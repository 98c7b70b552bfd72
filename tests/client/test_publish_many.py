"""Channel.publish_many: many messages pipelined on one socket, in order, each checked first."""

from __future__ import annotations

from typing import Any

import pytest

import cohrt_sync

from .conftest import Recorder


def test_publish_many_delivers_in_order_with_one_ack_each(
    server: Any, make_client: Any, channel_name: str
) -> None:
    rec = Recorder()
    ch = make_client(server, plugins=[rec]).subscribe(channel_name, user_id="u")
    acks = ch.publish_many([{"i": i} for i in range(300)], event="tick")
    assert len(acks) == 300 and all(a.event == "tick" for a in acks)
    ids = [a.id for a in acks]
    assert ids == sorted(ids) and len(set(ids)) == 300
    rec.wait_for(lambda: len(rec.messages(channel_name)) == 300)
    assert [m.data["i"] for m in rec.messages(channel_name)] == list(range(300))
    history = list(make_client(server).iter_history(channel_name))
    assert [m.id for m in history] == ids


def test_publish_many_checks_every_item_before_sending_any(
    server: Any, make_client: Any, channel_name: str
) -> None:
    client = make_client(server)
    ch = client.subscribe(channel_name, user_id="u")
    with pytest.raises(cohrt_sync.BadRequestError):
        ch.publish_many([1, 2, {"bad": object()}])
    assert ch.publish_many([]) == []
    assert client.history(channel_name) == []
    ch.close()
    with pytest.raises(cohrt_sync.ChannelClosedError):
        ch.publish_many([1])
