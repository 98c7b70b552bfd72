"""Reconnect after every kind of drop, and the exactly-once catch-up from history behind it."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import pytest
import requests
import websocket

import cohrt_sync
import cohrt_sync.delivery
from cohrt_sync._http import make_session
from cohrt_sync.retry import Retry

from .conftest import KEY, CountingSession, Recorder, wait_reads, wait_until

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


def _assert_exactly_once(recorder: Recorder, channel: str, publisher: Any,
                         total: int = N) -> None:
    recorder.wait_for(lambda: len(recorder.messages(channel)) >= total, timeout=20)
    # Nothing twice: delivery is in order, so a duplicate would come before a
    # marker published now; the marker must be the next message.
    publisher.publish(channel, {"seq": "end"})
    recorder.wait_for(lambda: len(recorder.messages(channel)) > total, timeout=20)
    got = [m.data["seq"] for m in recorder.messages(channel)]
    assert got == [*range(total), "end"], got


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
    _assert_exactly_once(recorder, channel_name, publisher)
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
    _assert_exactly_once(recorder, channel_name, publisher, total=20)
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
    _assert_exactly_once(recorder, channel_name, publisher)


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
    _assert_exactly_once(recorder, channel_name, publisher)
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


def test_missed_pong_triggers_reconnect(server: Any, make_client: Any, recorder: Recorder,
                                        channel_name: str) -> None:
    client = make_client(server, plugins=[recorder], ping_interval=0.1, ping_timeout=0.3)
    ch = client.subscribe(channel_name, user_id="u")
    wait_reads(ch, 3)  # several pings answered: still the first connection
    assert ch.reconnects == 0
    # Pretend a ping went unanswered long ago: the keepalive must cut the socket.
    ch._conn._ping_sent = time.monotonic() - 10
    recon = recorder.wait_for(lambda: recorder.of("reconnected"))
    assert recorder.of("disconnected")[0][2] == "ping timeout"
    assert recon[0][2] >= 1
    # The cut socket was let go with the drop, not kept until the next cut.
    assert ch._conn._cut is None
    ch.publish({"after": True})
    recorder.wait_for(lambda: recorder.messages())


def test_message_between_anchor_and_subscribe_is_not_replayed(
        any_server: Any, make_client: Any, recorder: Recorder, channel_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A message committed after the catch-up anchor but broadcast before the
    # socket subscribed was never live for this channel: it comes from history,
    # once and in order, even while id-less deliveries are reconciled with a
    # small pending list and across a reconnect.
    monkeypatch.setattr(cohrt_sync.delivery, "PENDING_COMPACT_AT", 4)
    publisher = make_client(any_server)
    session = make_session()
    injected = threading.Event()

    def publish_in_gap(resp: Any, **_: Any) -> Any:
        if "/edge/realtime/token" in resp.url and not injected.is_set():
            injected.set()
            publisher.publish(channel_name, {"seq": -1})
        return resp

    session.hooks["response"].append(publish_in_gap)
    client = make_client(any_server, plugins=[recorder], session=session)
    ch = client.subscribe(channel_name, user_id="reader")
    assert injected.is_set()
    for i in range(10):
        publisher.publish(channel_name, {"seq": i})
    recorder.wait_for(lambda: len(recorder.messages(channel_name)) >= 10)
    any_server.drop_channel(channel_name)
    wait_until(lambda: not ch.connected or ch.reconnects)
    for i in range(10, 15):
        publisher.publish(channel_name, {"seq": i})
    recorder.wait_for(lambda: recorder.of("reconnected"))
    recorder.wait_for(lambda: len(recorder.messages(channel_name)) >= 15)
    # Nothing twice: a duplicate would come before this marker (see _assert_exactly_once).
    publisher.publish(channel_name, {"seq": "end"})
    recorder.wait_for(lambda: len(recorder.messages(channel_name)) > 15)
    assert [m.data["seq"] for m in recorder.messages(channel_name)] == [*range(15), "end"]


def test_non_persisted_stream_backs_off_history_reconciliation(
    server_noids: Any, make_client: Any, recorder: Any, channel_name: str
) -> None:
    """Id-less, non-persisted frames (a live dashboard) don't read history every 1000 frames.

    Each reconciliation is an HTTP history read that stalls the dispatcher and
    counts against the tier's history quota; while history shows nothing new,
    the interval doubles.
    """
    session = CountingSession()
    client = make_client(server_noids, plugins=[recorder], session=session)
    client.subscribe(channel_name, user_id="dash")
    token = requests.post(
        f"{server_noids.base_url}/edge/realtime/token",
        params={"key": KEY},
        json={"user_id": "feed"},
        timeout=10,
    ).json()["token"]
    ws = websocket.create_connection(
        f"{server_noids.ws_url}/edge/realtime?token={token}&channel={channel_name}",
        timeout=10,
    )
    n = 7_000
    frame = json.dumps({"action": "publish", "event": "tick", "data": {"v": 1}, "persist": False})
    try:
        for _ in range(n):
            ws.send(frame)
        recorder.wait_for(lambda: len(recorder.messages(channel_name)) >= n, timeout=30)
    finally:
        ws.close()
    assert len(recorder.messages(channel_name)) == n
    reads = [p for p in session.paths if p.startswith("edge/realtime/history")]
    # Every 1000 frames would be 6 reads; doubling intervals make it 2.
    assert len(reads) <= 3, reads
