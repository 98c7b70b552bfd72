"""Publishing on a channel that reconnects: the publish waits for the next socket,
within its own timeout; only a closed channel refuses at once. A publish that was
sent is never sent again: if its socket drops before the ack, it may have been
applied, and the error says so."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Dict, List

import pytest

import cohrt_sync
from tests.hostile._server import HostileServer

from .conftest import Recorder, wait_until


class HeldMints:
    """A token knob that holds each mint after the first socket's until released:
    the channel stays "reconnecting" for as long as the test wants."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = threading.Event()

    async def __call__(self, request: Any) -> Any:
        self.held.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 20)
        return None


class Publish(threading.Thread):
    """One ``publish`` on its own thread, its outcome kept."""

    def __init__(self, call: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(name="test-publish", daemon=True)
        self.call, self.args, self.kwargs = call, args, kwargs
        self.result: Any = None
        self.error: Any = None
        self.took = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.result = self.call(*self.args, **self.kwargs)
        except BaseException as e:  # kept for the test to look at
            self.error = e
        self.took = time.monotonic() - started


def _stored(hostile: HostileServer, channel: str) -> List[Dict[str, Any]]:
    return [r["data"] for r in hostile.rows if r["channel"] == channel]


def _on_first_publish(hostile: HostileServer, misbehave: Any) -> None:
    """The server runs ``misbehave(ws, frame)`` for the first publish frame
    instead of answering it; later publishes are answered as usual."""
    first = [True]

    async def once(ws: Any, frame: Any) -> bool:
        if not first[0]:
            return False
        first[0] = False
        await misbehave(ws, frame)
        return True

    hostile.on_publish = once


def _reconnecting(hostile: HostileServer, ch: cohrt_sync.Channel, held: HeldMints) -> None:
    hostile.on_token = held
    hostile.drop_all()
    assert held.held.wait(10), "the reconnect never asked for a token"
    assert not ch.connected


def test_a_publish_while_reconnecting_waits_for_the_socket_then_is_sent(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = hostile_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    held = HeldMints()
    _reconnecting(hostile, ch, held)
    publish = Publish(ch.publish, {"n": 1}, timeout=10)
    publish.start()
    publish.join(0.3)
    assert publish.is_alive(), f"did not wait: {publish.error!r}"
    held.release.set()
    publish.join(10)
    assert publish.error is None, repr(publish.error)
    ack = publish.result
    assert (ack.channel, ack.event, ack.action) == (channel_name, "message", "message")
    assert ack.id == hostile.rows[-1]["id"]
    assert _stored(hostile, channel_name) == [{"n": 1}]
    recorder.wait_for(lambda: recorder.messages())
    assert [m.data for m in recorder.messages()] == [{"n": 1}]
    assert ch.reconnects == 1


def test_publish_many_while_reconnecting_sends_every_item_once_in_order(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    client = hostile_client()
    ch = client.subscribe(channel_name, "alice")
    held = HeldMints()
    _reconnecting(hostile, ch, held)
    items = [{"n": n} for n in range(200)]
    publish = Publish(ch.publish_many, items, timeout=10)
    publish.start()
    publish.join(0.3)
    assert publish.is_alive()
    held.release.set()
    publish.join(10)
    assert publish.error is None, repr(publish.error)
    assert [a.id for a in publish.result] == [r["id"] for r in hostile.rows[-200:]]
    assert _stored(hostile, channel_name) == items


def test_a_publish_still_reconnecting_after_its_timeout_was_not_sent(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    client = hostile_client()
    ch = client.subscribe(channel_name, "alice")
    held = HeldMints()
    _reconnecting(hostile, ch, held)
    started = time.monotonic()
    with pytest.raises(cohrt_sync.ChannelClosedError, match=r"still reconnecting.*not sent"):
        ch.publish({"n": 1}, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2.0
    held.release.set()
    wait_until(lambda: ch.connected)
    assert ch.publish({"n": 2}).id is not None
    assert _stored(hostile, channel_name) == [{"n": 2}]


def test_only_a_closed_channel_refuses_at_once_and_close_ends_a_waiting_publish(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    client = hostile_client()
    ch = client.subscribe(channel_name, "alice")
    held = HeldMints()
    _reconnecting(hostile, ch, held)
    publish = Publish(ch.publish, {"n": 1}, timeout=30)
    publish.start()
    publish.join(0.3)
    assert publish.is_alive()
    try:
        ch.close()
        publish.join(5)
        assert isinstance(publish.error, cohrt_sync.ChannelClosedError), repr(publish.error)
        started = time.monotonic()
        with pytest.raises(cohrt_sync.ChannelClosedError, match="closed"):
            ch.publish({"n": 2}, timeout=30)
        assert time.monotonic() - started < 0.1
    finally:
        held.release.set()
    assert _stored(hostile, channel_name) == []


def test_after_a_lost_ack_the_next_publishes_succeed_at_once(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str
) -> None:
    async def lose_the_ack(ws: Any, frame: Any) -> None:
        # Committed and broadcast, but never acked.
        await hostile._commit(channel_name, frame.get("event", "message"), frame.get("data"))

    _on_first_publish(hostile, lose_the_ack)
    client = hostile_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    with pytest.raises(cohrt_sync.CohrtTimeoutError, match="may or may not have been published"):
        ch.publish({"n": 1}, timeout=0.5)
    # No wait for the resync's reconnect: these wait for it themselves.
    acks = [ch.publish({"n": n}, timeout=5) for n in (2, 3)]
    assert [a.id for a in acks] == [2, 3]
    recorder.wait_for(lambda: len(recorder.messages()) == 3)
    assert [m.data for m in recorder.messages()] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert ch.reconnects == 1


def test_a_late_ack_is_never_matched_to_a_later_publish(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    async def ack_late(ws: Any, frame: Any) -> None:
        row = await hostile._commit(channel_name, "message", frame.get("data"))
        await asyncio.sleep(1.0)
        if not ws.closed:
            await ws.send_json({"action": "published", "event": "published",
                                "channel": channel_name, "created_at_ms": row["created_at_ms"],
                                "id": row["id"]})

    _on_first_publish(hostile, ack_late)
    client = hostile_client()
    ch = client.subscribe(channel_name, "alice")
    with pytest.raises(cohrt_sync.CohrtTimeoutError):
        ch.publish({"n": 1}, timeout=0.3)
    ack = ch.publish({"n": 2}, timeout=5)
    assert ack.id == 2  # its own row, not the late ack of row 1
    assert _stored(hostile, channel_name) == [{"n": 1}, {"n": 2}]


def test_a_publish_whose_socket_dies_before_the_ack_is_not_sent_again(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str
) -> None:
    async def drop_before_ack(ws: Any, frame: Any) -> None:
        await hostile._commit(channel_name, "message", frame.get("data"))
        ws._req.transport.abort()  # applied, and the socket dies before the ack

    _on_first_publish(hostile, drop_before_ack)
    client = hostile_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    with pytest.raises(cohrt_sync.CohrtConnectionError,
                       match="may or may not have been published") as info:
        ch.publish({"n": 1}, timeout=5)
    assert not isinstance(info.value, cohrt_sync.ChannelClosedError)
    recorder.wait_for(lambda: recorder.of("reconnected"))
    ch.publish({"n": 2})
    recorder.wait_for(lambda: len(recorder.messages()) == 2)
    assert _stored(hostile, channel_name) == [{"n": 1}, {"n": 2}]
    assert [m.data for m in recorder.messages()] == [{"n": 1}, {"n": 2}]


def test_a_frame_that_could_not_be_sent_goes_out_on_the_next_socket(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = hostile_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    # The socket can no longer send (a half-closed connection): the next
    # send raises, or the reader sees the server close first; either way
    # the frame was not sent on it.
    ch._conn._ws.sock.shutdown(socket.SHUT_WR)
    ack = ch.publish({"n": 1}, timeout=10)
    assert ack.id is not None
    assert _stored(hostile, channel_name) == [{"n": 1}]
    recorder.wait_for(lambda: recorder.messages())
    assert [m.data for m in recorder.messages()] == [{"n": 1}]
    assert ch.reconnects == 1
