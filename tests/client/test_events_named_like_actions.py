"""Events named like the protocol's own actions are messages, never acks or presence.

The spec accepts any event name and makes a message's ``action`` equal to its
``event``, so another user can publish ``event: "published"`` or
``event: "join"``. A frame that carries ``data`` is a publication: it never
settles this socket's pending publish and never changes presence. These run
against the local server, with the other user publishing over its own
connection, as an attacker would.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator, List

import pytest

import cohrt_sync

from .conftest import Recorder

PROTOCOL_NAMES = ["published", "connected", "subscribed", "publish", "join", "leave"]


@pytest.fixture()
def flood(server: Any, make_client: Any, channel_name: str) -> Iterator[threading.Event]:
    """Mallory publishes ``event: "published"`` on the channel until the test ends."""
    mallory = make_client(server)
    stop = threading.Event()

    def run() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            mallory.publish(channel_name, {"fake": n}, event="published")

    threads = [threading.Thread(target=run, name=f"mallory-{i}", daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    yield stop
    stop.set()
    for t in threads:
        t.join(10)


def test_a_message_named_published_never_settles_an_ack(
    server: Any, make_client: Any, channel_name: str, flood: threading.Event
) -> None:
    victim = make_client(server)
    ch = victim.subscribe(channel_name, "bob")
    acks = [ch.publish({"mine": i}) for i in range(40)]
    flood.set()
    # Each ack names the victim's own row: the id history has for that message.
    rows = victim.sql(
        "SELECT id, data FROM realtime_messages WHERE channel = ? AND data LIKE '%mine%'",
        [channel_name],
    )
    own_ids = {row["id"]: row["data"] for row in rows}
    assert [own_ids.get(ack.id) for ack in acks] == [f'{{"mine":{i}}}' for i in range(40)]


def test_a_refused_publish_is_not_reported_as_acknowledged(
    server: Any, make_client: Any, channel_name: str, flood: threading.Event
) -> None:
    victim = make_client(server)
    ch = victim.subscribe(channel_name, "bob")
    too_big = {"blob": "x" * 70_000}  # over the server's 64 KiB data limit
    for _ in range(10):
        with pytest.raises(cohrt_sync.BadRequestError, match="too large"):
            ch.publish(too_big)
    # The channel still pairs every later publish with its own ack.
    ack = ch.publish({"after": 1})
    assert victim.history(channel_name, after=ack.id - 1, limit=1)[0].data == {"after": 1}


@pytest.mark.parametrize("event", PROTOCOL_NAMES)
def test_protocol_named_events_are_delivered_as_messages(
    server: Any, make_client: Any, channel_name: str, event: str
) -> None:
    recorder = Recorder()
    watcher = make_client(server, plugins=[recorder])
    ch = watcher.subscribe(channel_name, "bob", name="Bob")
    mallory = make_client(server)
    m_ch = mallory.subscribe(channel_name, "mallory", name="Mallory")
    recorder.wait_for(lambda: recorder.of("join"))
    before = dict(ch.presence)
    # As a socket publish and as an HTTP publish, persisted and not.
    m_ch.publish({"user": {"id": "ghost", "name": "Ghost"}}, event=event)
    mallory.publish(channel_name, {"user": {"id": "ghost"}}, event=event, persist=False)
    marker = ch.publish({"marker": 1})
    got: List[cohrt_sync.Message] = recorder.wait_for(
        lambda: (lambda ms: ms if any(m.data == {"marker": 1} for m in ms) else None)(
            recorder.messages(channel_name)
        )
    )
    assert [(m.event, m.action) for m in got] == [(event, event), (event, event),
                                                   ("message", "message")]
    assert marker.id is not None and got[-1].id == marker.id
    # Presence is what the server's own join frames said, and no leave fired.
    assert ch.presence == before and set(before) == {"bob", "mallory"}
    assert [e[2].id for e in recorder.of("join")] == ["mallory"]
    assert recorder.of("leave") == []
