"""Closing clients and channels: idempotent, quick from any state, leaving no thread behind."""

from __future__ import annotations

import _thread
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, List

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry

from .conftest import KEY, Recorder, client_threads, wait_until


def test_close_is_idempotent_quick_and_joins_threads(server: Any, make_client: Any,
                                                     channel_name: str) -> None:
    client = make_client(server)
    chans = [client.subscribe(f"{channel_name}-{i}", user_id="u") for i in range(3)]
    assert len(client_threads()) == 7  # reader + dispatcher per channel, one keepalive
    names = {t.name for t in client_threads()}
    assert all(n.startswith("cohrt-sync-") for n in names)
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 3
    client.close()
    chans[0].close()
    assert not client_threads()
    assert client.closed and all(c.closed for c in chans)
    with pytest.raises(cohrt_sync.ChannelClosedError):
        client.subscribe(channel_name, user_id="u")


def test_close_from_inside_a_hook(server: Any, make_client: Any, channel_name: str) -> None:
    done = threading.Event()

    class Closer:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            channel.close()
            done.set()

    ch = make_client(server, plugins=[Closer()]).subscribe(channel_name, user_id="u")
    ch.publish({"x": 1})
    assert done.wait(5)
    assert ch.wait(5)
    wait_until(lambda: not client_threads(), timeout=5)


def test_context_manager_and_wait(server: Any, channel_name: str) -> None:
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as client:
        client.subscribe(channel_name, user_id="u")
        assert not client.wait(timeout=0.05)
        threading.Timer(0.1, client.close).start()
        assert client.wait(timeout=5)
    assert not client_threads()


def test_run_forever_closes_on_ctrl_c(server: Any, channel_name: str) -> None:
    # A shell starting CI in the background may ignore SIGINT, and then
    # interrupt_main() does nothing: give the test the handler a terminal has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        client = cohrt_sync.Client(key=KEY, base_url=server.base_url)
        client.subscribe(channel_name, user_id="u")
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        client.run_forever()
        timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert client.closed and not client_threads()


def test_unclosed_client_does_not_hang_interpreter_exit(server: Any, channel_name: str) -> None:
    script = (
        "import sys, cohrt_sync\n"
        "c = cohrt_sync.Client(key=sys.argv[1], base_url=sys.argv[2])\n"
        "ch = c.subscribe(sys.argv[3], user_id='u')\n"
        "ch.publish({'x': 1})\n"
        "print('bye', flush=True)\n"  # exits without close(): atexit must tidy up
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script, KEY, server.base_url, channel_name],
        capture_output=True, text=True, timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bye"
    assert time.monotonic() - start < 10
    assert "Traceback" not in proc.stderr


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
    # No on_message once close() returned: the only thread that calls it was
    # joined, so nothing can be delivered later.
    assert ch._dispatcher.thread is not None and not ch._dispatcher.thread.is_alive()
    assert len(delivered) == count
    assert not any("still running" in r.getMessage() for r in caplog.records)


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


def test_close_while_server_unreachable(make_server: Any, make_client: Any,
                                        recorder: Recorder) -> None:
    srv = make_server()
    client = make_client(srv, plugins=[recorder])
    client.subscribe("chat:a", user_id="u")
    srv.stop()  # reconnect attempts now fail again and again
    recorder.wait_for(lambda: recorder.of("error"))  # one of them failed already
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 3
    assert not client_threads()
    assert not [t for t in threading.enumerate() if t.name.startswith("cohrt-sync-r")]
