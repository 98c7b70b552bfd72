"""Channels over real sockets: subscribe, presence, publish acks, hooks, ordering, overflow."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest

import cohrt_sync

from .conftest import Recorder, client_threads, wait_reads, wait_until


def test_subscribe_presence_publish_and_hooks(server: Any, make_client: Any, recorder: Recorder,
                                              channel_name: str) -> None:
    client = make_client(server, plugins=[recorder])
    ch = client.subscribe(channel_name, user_id="alice", name="Alice")
    assert isinstance(ch, cohrt_sync.Channel)
    assert ch.name == channel_name and ch.connected and not ch.closed
    assert ch.presence == {"alice": cohrt_sync.User(id="alice", name="Alice")}
    assert ch in client.channels
    ack = ch.publish({"text": "hello"}, event="message", persist=True)
    assert isinstance(ack, cohrt_sync.PublishAck)
    assert ack.channel == channel_name and ack.event == "message"
    assert isinstance(ack.created_at_ms, int) and isinstance(ack.id, int)
    typing_ack = ch.publish({"user": "Alice"}, event="typing", persist=False)
    assert typing_ack.id is None
    msgs = recorder.wait_for(lambda: len(recorder.messages()) == 2 and recorder.messages())
    assert msgs[0] == cohrt_sync.Message(
        channel=channel_name, event="message", action="message", data={"text": "hello"},
        created_at_ms=ack.created_at_ms, id=ack.id,
    )
    assert (msgs[1].event, msgs[1].data, msgs[1].id) == ("typing", {"user": "Alice"}, None)
    assert all(e[1] is ch for e in recorder.events)
    assert recorder.of("connected") == [("connected", ch)]

    other = make_client(server)
    bob = other.subscribe(channel_name, user_id=42, name="Bob")
    assert set(bob.presence) == {"alice", "42"}
    join = recorder.wait_for(lambda: recorder.of("join"))[0]
    assert join[2] == cohrt_sync.User(id="42", name="Bob")
    assert ch.presence["42"].name == "Bob"
    bob.close()
    leave = recorder.wait_for(lambda: recorder.of("leave"))[0]
    assert leave[2].id == "42" and leave[3] and leave[2].last_seen == leave[3]
    assert "42" not in ch.presence
    ch.close()
    assert ch.closed and not ch.connected
    recorder.wait_for(lambda: recorder.of("closed"))
    with pytest.raises(cohrt_sync.ChannelClosedError):
        ch.publish({"late": True})


def test_numeric_user_ids_are_strings(server: Any, make_client: Any, channel_name: str) -> None:
    ch = make_client(server).subscribe(channel_name, user_id=30)
    assert ch.user_id == "30" and list(ch.presence) == ["30"]


def test_error_frame_in_reply_to_publish_raises(make_server: Any, make_client: Any,
                                                recorder: Recorder) -> None:
    srv = make_server(max_payload=64)
    ch = make_client(srv, plugins=[recorder]).subscribe("chat:big", user_id="u")
    with pytest.raises(cohrt_sync.BadRequestError):
        ch.publish({"blob": "x" * 500})
    # The socket stays usable and acks stay correlated after the error.
    assert ch.publish({"small": 1}).created_at_ms
    recorder.wait_for(lambda: len(recorder.messages()) == 1)


def test_concurrent_publishers_get_their_own_acks(server: Any, make_client: Any,
                                                  channel_name: str) -> None:
    ch = make_client(server).subscribe(channel_name, user_id="u")
    acks: List[Any] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(20):
            ack = ch.publish({"t": n, "i": i})
            with lock:
                acks.append(ack)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(acks) == 80 and len({a.id for a in acks}) == 80


def test_subscribe_refused(make_server: Any, make_client: Any) -> None:
    srv = make_server()
    srv.add_key("k_off")
    with pytest.raises(cohrt_sync.NotProvisionedError):
        make_client(srv, key="k_off").subscribe("chat:a", user_id="u")
    assert not client_threads()


def test_slow_hook_keeps_order_and_pings_flowing(make_server: Any, make_client: Any,
                                                 channel_name: str) -> None:
    srv = make_server(heartbeat=0.2)  # the server drops sockets that miss its pings
    seen: List[int] = []
    release = threading.Event()

    class Slow:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            if message.data["i"] == 0:
                release.wait(2.5)  # far longer than the ping interval and timeout
            seen.append(message.data["i"])

    client = make_client(srv, plugins=[Slow()], ping_interval=0.2, ping_timeout=0.5)
    ch = client.subscribe(channel_name, user_id="u")
    publisher = make_client(srv)
    for i in range(30):
        publisher.publish(channel_name, {"i": i})
    # Frames keep being read while the hook blocks: the server's pings and the
    # pongs to the client's. At heartbeat 0.2 s the server drops a socket whose
    # pongs stop, so six reads (over a second) would show it.
    wait_reads(ch, 6)
    assert ch.connected and ch.reconnects == 0
    release.set()
    wait_until(lambda: len(seen) == 30)
    assert seen == list(range(30))
    assert ch.reconnects == 0


def test_raising_hook_is_logged_and_channel_continues(server: Any, make_client: Any,
                                                      recorder: Recorder, channel_name: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            if message.data == {"boom": True}:
                raise RuntimeError("plugin bug")

    client = make_client(server, plugins=[Broken(), recorder])
    ch = client.subscribe(channel_name, user_id="u")
    ch.publish({"boom": True})
    ch.publish({"after": 1})
    recorder.wait_for(lambda: len(recorder.messages()) == 2)
    errors = recorder.wait_for(lambda: recorder.of("error"))
    assert isinstance(errors[0][2], RuntimeError)
    assert any(r.exc_info and "plugin bug" in str(r.exc_info[1]) for r in caplog.records)
    assert ch.connected


def test_overflow_reconnects_and_recovers_persisted_messages(server: Any, make_client: Any,
                                                             channel_name: str,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    caplog.set_level(logging.WARNING, logger="cohrt_sync.channel")
    seen: List[int] = []
    gate = threading.Event()

    class Slow:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            gate.wait(5)
            seen.append(message.data["i"])

    ch = make_client(server, plugins=[Slow()], queue_size=4).subscribe(channel_name, user_id="u")
    publisher = make_client(server)
    for i in range(40):
        publisher.publish(channel_name, {"i": i})
    wait_until(lambda: any("behind" in r.getMessage() for r in caplog.records))
    gate.set()
    wait_until(lambda: len(seen) >= 40, timeout=15)
    # Nothing twice: delivery is in order, so a duplicate would come before a
    # marker published now; the marker must be the next message.
    publisher.publish(channel_name, {"i": "end"})
    wait_until(lambda: len(seen) > 40)
    assert seen == [*range(40), "end"]
    assert ch.reconnects >= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": -1},
        {"timeout": 0},
        {"persist": "no"},
        {"data": {"t": "\ud800"}},
        {"data": {"\udbff": 1}},
        {"event": "\ud800"},
    ],
)
def test_socket_publish_arguments_checked_before_sending(
    server: Any, make_client: Any, channel_name: str, kwargs: Any
) -> None:
    client = make_client(server)
    ch = client.subscribe(channel_name, user_id="u")
    with pytest.raises(cohrt_sync.BadRequestError):
        ch.publish(**{"data": {"x": 1}, **kwargs})
    # Nothing reached the server, and the channel still works.
    assert client.history(channel_name) == []
    assert ch.publish({"x": 2}).id is not None



class PresenceSeen:
    """Records ``channel.presence`` as each ``on_join``/``on_leave`` sees it, running first."""

    def __init__(self) -> None:
        self.seen: List[tuple] = []

    @cohrt_sync.hookimpl(tryfirst=True)
    def on_join(self, channel: Any, user: Any) -> None:
        self.seen.append(("join", user.id, set(channel.presence)))

    @cohrt_sync.hookimpl(tryfirst=True)
    def on_leave(self, channel: Any, user: Any) -> None:
        self.seen.append(("leave", user.id, set(channel.presence)))


def test_presence_is_the_channels_own_whatever_plugins_run(
    server: Any, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    # One owner: the channel updates presence before any on_join/on_leave,
    # so a plugin that runs first sees it too, and removing the built-in
    # presence plugin (an observer) changes nothing.
    seen = PresenceSeen()
    client = make_client(server, plugins=[recorder, seen])
    client.unregister(client.plugin_manager.get_plugin("cohrt_sync.presence"))
    ch = client.subscribe(channel_name, user_id="alice")
    assert not hasattr(ch, "roster")  # no public way to edit it
    bob = make_client(server).subscribe(channel_name, user_id="bob")
    recorder.wait_for(lambda: recorder.of("join"))
    assert set(ch.presence) == {"alice", "bob"}
    bob.close()
    recorder.wait_for(lambda: recorder.of("leave"))
    assert set(ch.presence) == {"alice"}
    assert seen.seen == [("join", "bob", {"alice", "bob"}), ("leave", "bob", {"alice"})]
