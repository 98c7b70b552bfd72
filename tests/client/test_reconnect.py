"""Reconnect after every kind of drop, with exactly-once catch-up, in both server modes."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry

from .conftest import Recorder, client_threads, wait_until

N = 40


def _publish_around(publisher: Any, channel: str, disrupt: Callable[[], None],
                    before: int = 10, total: int = N, retry_until: float = 10.0) -> None:
    """Publish ``total`` numbered messages over HTTP, disrupting after ``before``."""
    for i in range(total):
        if i == before:
            disrupt()
        deadline = time.monotonic() + retry_until
        while True:
            try:
                publisher.publish(channel, {"seq": i}, idempotency_key=f"{channel}-{i}")
                break
            except cohrt_sync.CohrtConnectionError:
                # Only while the server itself is down (restart test).
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _assert_exactly_once(recorder: Recorder, channel: str, total: int = N) -> None:
    recorder.wait_for(lambda: len(recorder.messages(channel)) >= total, timeout=20)
    time.sleep(0.3)  # a duplicate would show up right behind
    got = [m.data["seq"] for m in recorder.messages(channel)]
    assert got == list(range(total)), got


@pytest.mark.parametrize("kind", ["abrupt", "graceful"])
def test_drop_then_catch_up_exactly_once(any_server: Any, make_client: Any, recorder: Recorder,
                                         channel_name: str, kind: str) -> None:
    client = make_client(any_server, plugins=[recorder])
    ch = client.subscribe(channel_name, user_id="reader")
    publisher = make_client(any_server)

    def disrupt() -> None:
        if kind == "abrupt":
            assert any_server.drop_channel(channel_name) >= 1
        else:
            assert any_server.close_channel(channel_name, code=1001) >= 1

    _publish_around(publisher, channel_name, disrupt)
    _assert_exactly_once(recorder, channel_name)
    recorder.wait_for(lambda: recorder.of("reconnected"))
    assert ch.reconnects >= 1
    reason = recorder.of("disconnected")[0][2]
    assert reason, reason
    if kind == "graceful":
        assert "1001" in reason, reason


def test_outage_messages_come_from_history_before_live(any_server: Any, make_client: Any,
                                                       recorder: Recorder, channel_name: str
                                                       ) -> None:
    # A slow first reconnect guarantees messages are published during the outage.
    slow = Retry(total=None, backoff_factor=0.6, backoff_max=0.6, jitter=0.0)
    client = make_client(any_server, plugins=[recorder], reconnect_backoff=slow)
    ch = client.subscribe(channel_name, user_id="reader")
    publisher = make_client(any_server)
    for i in range(5):
        publisher.publish(channel_name, {"seq": i})
    recorder.wait_for(lambda: len(recorder.messages()) == 5)
    any_server.drop_channel(channel_name)
    wait_until(lambda: not ch.connected)
    for i in range(5, 15):
        publisher.publish(channel_name, {"seq": i})
    publisher.publish(channel_name, {"typing": True}, event="typing", persist=False)  # lost
    recon = recorder.wait_for(lambda: recorder.of("reconnected"))[0]
    assert recon[3] == 10  # caught up from history
    for i in range(15, 20):
        ch.publish({"seq": i})
    _assert_exactly_once(recorder, channel_name, total=20)
    caught = recorder.messages()[5:15]
    assert all(m.id is not None for m in caught)
    ids = [m.id for m in caught]
    assert ids == sorted(ids)


@pytest.mark.parametrize("live_ids", [True, False], ids=["ids", "no-ids"])
def test_server_restart_on_same_data_dir(make_server: Any, make_client: Any, recorder: Recorder,
                                         channel_name: str, live_ids: bool) -> None:
    srv = make_server(live_ids=live_ids)
    client = make_client(srv, plugins=[recorder])
    client.subscribe(channel_name, user_id="reader")
    publisher = make_client(srv)
    _publish_around(publisher, channel_name, srv.restart)
    _assert_exactly_once(recorder, channel_name)


@pytest.mark.parametrize("live_ids", [True, False], ids=["ids", "no-ids"])
def test_token_expiry_between_attempts(make_server: Any, make_client: Any, recorder: Recorder,
                                       channel_name: str, live_ids: bool) -> None:
    srv = make_server(live_ids=live_ids, session_ttl=60)
    client = make_client(srv, plugins=[recorder])
    ch = client.subscribe(channel_name, user_id="reader", ttl=60)
    publisher = make_client(srv)

    def expire_and_drop() -> None:
        # Both the connection token and the edge bearer are now expired server-side.
        srv.advance_clock(3600)
        srv.drop_channel(channel_name)

    _publish_around(publisher, channel_name, expire_and_drop)
    _assert_exactly_once(recorder, channel_name)
    assert ch.reconnects >= 1


def test_presence_resynced_after_reconnect(server: Any, make_client: Any, recorder: Recorder,
                                          channel_name: str) -> None:
    slow = Retry(total=None, backoff_factor=1.0, backoff_max=1.0, jitter=0.0)
    watcher = make_client(server, plugins=[recorder], reconnect_backoff=slow)
    ch = watcher.subscribe(channel_name, user_id="watcher")
    leaver = make_client(server, reconnect_backoff=slow).subscribe(channel_name, user_id="leaver")
    recorder.wait_for(lambda: recorder.of("join"))
    server.drop_channel(channel_name)
    leaver.close()  # leaves during the outage
    comer = make_client(server).subscribe(channel_name, user_id="comer", name="Comer")
    recorder.wait_for(lambda: recorder.of("reconnected"))
    assert set(ch.presence) == {"watcher", "comer"}
    joins = [e[2].id for e in recorder.of("join")]
    leaves = [(e[2].id, e[3]) for e in recorder.of("leave")]
    assert joins == ["leaver", "comer"]
    assert leaves == [("leaver", None)]
    comer.close()
    recorder.wait_for(lambda: len(recorder.of("leave")) == 2)
    assert set(ch.presence) == {"watcher"}


def test_close_mid_reconnect_returns_quickly(make_server: Any, make_client: Any,
                                             recorder: Recorder) -> None:
    srv = make_server()
    slow = Retry(total=None, backoff_factor=30.0, backoff_max=30.0, jitter=0.0)
    client = make_client(srv, plugins=[recorder], reconnect_backoff=slow)
    ch = client.subscribe("chat:a", user_id="u")
    srv.stop()
    recorder.wait_for(lambda: recorder.of("disconnected"))
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 2
    assert ch.closed and not client_threads()


def test_close_while_server_unreachable(make_server: Any, make_client: Any) -> None:
    srv = make_server()
    client = make_client(srv)
    client.subscribe("chat:a", user_id="u")
    srv.stop()  # reconnect attempts now fail again and again
    time.sleep(0.5)
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 3
    assert not client_threads()
    assert not [t for t in threading.enumerate() if t.name.startswith("cohrt-sync-r")]


def test_missed_pong_triggers_reconnect(server: Any, make_client: Any, recorder: Recorder,
                                        channel_name: str) -> None:
    client = make_client(server, plugins=[recorder], ping_interval=0.1, ping_timeout=0.3)
    ch = client.subscribe(channel_name, user_id="u")
    time.sleep(0.5)  # several pings answered: still the first connection
    assert ch.reconnects == 0
    # Pretend a ping went unanswered long ago: the keepalive must cut the socket.
    ch._ping_sent = time.monotonic() - 10
    recon = recorder.wait_for(lambda: recorder.of("reconnected"))
    assert recorder.of("disconnected")[0][2] == "ping timeout"
    assert recon[0][2] >= 1
    ch.publish({"after": True})
    recorder.wait_for(lambda: recorder.messages())
