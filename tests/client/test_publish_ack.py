"""A ``PublishAck`` means one thing on both paths: it describes the published message."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("event", ["message", "typing", "published"])
def test_the_socket_and_the_http_ack_describe_the_message_alike(
    any_server: Any, make_client: Any, channel_name: str, event: str
) -> None:
    client = make_client(any_server)
    ch = client.subscribe(channel_name, "alice")
    over_socket = ch.publish({"n": 1}, event=event)
    over_http = client.publish(channel_name, {"n": 2}, event=event)
    for ack in (over_socket, over_http):
        assert (ack.channel, ack.event, ack.action) == (channel_name, event, event)
        assert isinstance(ack.created_at_ms, int)
    # The message as history holds it: the same event and action.
    stored = client.history(channel_name)
    assert [(m.event, m.action) for m in stored] == [(event, event)] * 2
