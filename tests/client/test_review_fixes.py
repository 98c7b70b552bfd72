"""Regression tests for bugs found in review: each failed before its fix."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from typing import Any, List

import pytest

import cohrt_sync
import cohrt_sync.delivery
from cohrt_sync._http import make_session
from cohrt_sync.retry import Retry

from .conftest import KEY, Recorder, client_threads, wait_until


def test_client_close_from_on_closed_does_not_stall(server: Any, make_client: Any,
                                                    channel_name: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # client.close() is joining the dispatcher, which runs on_closed, which calls
    # client.close() again: the re-entrant close must not wait for itself.
    caplog.set_level(logging.WARNING, logger="cohrt_sync.channel")
    called = threading.Event()

    class ShutDownOnClose:
        @cohrt_sync.hookimpl
        def on_closed(self, channel: Any) -> None:
            channel.client.close()
            channel.close()
            called.set()

    client = make_client(server, plugins=[ShutDownOnClose()])
    client.subscribe(channel_name, user_id="u")
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 2
    assert called.is_set()
    assert not any("still running" in r.getMessage() for r in caplog.records)
    wait_until(lambda: not client_threads(), timeout=5)


def test_hook_closing_client_while_main_closes(server: Any, make_client: Any,
                                               channel_name: str) -> None:
    entered = threading.Event()
    release = threading.Event()

    class Closer:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            entered.set()
            release.wait(5)
            channel.client.close()

    client = make_client(server, plugins=[Closer()])
    ch = client.subscribe(channel_name, user_id="u")
    ch.publish({"x": 1})
    assert entered.wait(5)
    threading.Timer(0.1, release.set).start()
    start = time.monotonic()
    client.close()   # joins the dispatcher, whose hook calls client.close() meanwhile
    assert time.monotonic() - start < 2
    wait_until(lambda: not client_threads(), timeout=5)


def test_tokens_never_in_websocket_trace_or_logs(server: Any, make_client: Any,
                                                 channel_name: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # websocket-client's trace logs the handshake request line, whose query
    # string carries the connection token; edge bearers are secrets as well.
    import websocket

    caplog.set_level(logging.DEBUG)
    client = make_client(server)
    websocket.enableTrace(True, handler=logging.NullHandler())
    try:
        ch = client.subscribe(channel_name, user_id="u")
        ch.publish({"x": 1})
    finally:
        websocket.enableTrace(False)
        logging.getLogger("websocket").setLevel(logging.NOTSET)
    bearer = client._http._bearer
    assert bearer
    messages = [r.getMessage() for r in caplog.records]
    assert any("/edge/realtime?" in m for m in messages)  # the trace did log the URL
    for m in messages:
        assert not re.search(r"token=(?!\*\*\*)", m), m
        assert bearer not in m, m


def test_message_between_anchor_and_subscribe_is_not_replayed(
        any_server: Any, make_client: Any, recorder: Recorder, channel_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A message committed after the catch-up anchor but broadcast before the
    # socket subscribed was never live for this channel. Without ids it used to
    # stall the reconciliation of id-less deliveries (which then forgot some and
    # replayed them as duplicates) and come out of order after a reconnect.
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
    time.sleep(0.2)  # a duplicate would show up right behind
    assert [m.data["seq"] for m in recorder.messages(channel_name)] == list(range(15))


class StallingProxy:
    """A TCP proxy to a real server that never answers WebSocket upgrades."""

    def __init__(self, upstream: Any) -> None:
        self.upstream = (upstream.host, upstream.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stalled = threading.Event()
        self.conns: List[socket.socket] = []
        self.threads: List[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name="test-proxy", daemon=True)
        self.threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            first = conn.recv(65536)
            if first.startswith(b"GET /edge/realtime?"):
                self.stalled.set()
                conn.recv(1)  # hold it open until the client or close() cuts it
                return
            up = socket.create_connection(self.upstream)
            self.conns.append(up)
            up.sendall(first)
            self._spawn(self._pipe, up, conn)
            self._pipe(conn, up)
        except OSError:
            pass

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self.threads:
            t.join(5)


def test_client_close_cuts_a_subscribe_blocked_in_its_handshake(server: Any,
                                                                 make_client: Any,
                                                                 channel_name: str) -> None:
    proxy = StallingProxy(server)
    try:
        client = make_client(server, base_url=proxy.url, connect_timeout=30)
        outcome: List[BaseException] = []

        def run() -> None:
            try:
                client.subscribe(channel_name, user_id="u")
            except BaseException as e:  # recorded for the assertion
                outcome.append(e)

        subscriber = threading.Thread(target=run, name="test-subscriber", daemon=True)
        subscriber.start()
        assert proxy.stalled.wait(10)
        start = time.monotonic()
        client.close()
        subscriber.join(3)
        assert not subscriber.is_alive(), "subscribe() still blocked after close()"
        assert time.monotonic() - start < 3
        assert len(outcome) == 1 and isinstance(outcome[0], cohrt_sync.ChannelClosedError)
        assert not client_threads()
    finally:
        proxy.close()


def test_close_interrupts_a_long_catch_up(server: Any, make_client: Any, channel_name: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cohrt_sync.channel")
    in_catch_up = threading.Event()
    delivered: List[int] = []

    class Slow:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            delivered.append(message.data["seq"])
            if message.data["seq"] >= 0:  # recovered from history: slow consumer
                in_catch_up.set()
                time.sleep(0.1)

    slow_reconnect = Retry(total=None, backoff_factor=0.5, backoff_max=0.5, jitter=0.0)
    client = make_client(server, plugins=[Slow()], reconnect_backoff=slow_reconnect)
    ch = client.subscribe(channel_name, user_id="u")
    publisher = make_client(server)
    publisher.publish(channel_name, {"seq": -1})
    wait_until(lambda: delivered == [-1])
    server.drop_channel(channel_name)
    wait_until(lambda: not ch.connected)
    for i in range(60):
        publisher.publish(channel_name, {"seq": i})
    assert in_catch_up.wait(10)
    start = time.monotonic()
    ch.close()
    assert time.monotonic() - start < 1.5
    count = len(delivered)
    assert count < 30
    time.sleep(0.3)
    assert len(delivered) == count  # no on_message once close() returned
    assert not any("still running" in r.getMessage() for r in caplog.records)


def test_non_persisted_stream_backs_off_history_reconciliation(
    server_noids: Any, make_client: Any, recorder: Any, channel_name: str
) -> None:
    """Id-less, non-persisted frames (a live dashboard) don't read history every 1000 frames.

    Each reconciliation is an HTTP history read that stalls the dispatcher and
    counts against the tier's history quota; while history shows nothing new,
    the interval doubles.
    """
    import json as _json

    import requests as _requests
    import websocket as _websocket

    from .test_http import CountingSession

    session = CountingSession()
    client = make_client(server_noids, plugins=[recorder], session=session)
    client.subscribe(channel_name, user_id="dash")
    token = _requests.post(
        f"{server_noids.base_url}/edge/realtime/token",
        params={"key": KEY},
        json={"user_id": "feed"},
        timeout=10,
    ).json()["token"]
    ws = _websocket.create_connection(
        f"{server_noids.ws_url}/edge/realtime?token={token}&channel={channel_name}",
        timeout=10,
    )
    n = 7_000
    frame = _json.dumps({"action": "publish", "event": "tick", "data": {"v": 1}, "persist": False})
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
