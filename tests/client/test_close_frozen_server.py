"""close() against a server that stops answering: within its deadline, no thread left.

A hung host or a network black hole is frozen here with SIGSTOP: a real
``cohrt-sync serve`` in a child process whose kernel still accepts
connections and data while nothing answers. Each test freezes it and lets it
go (SIGCONT) in its teardown, whatever happens.

Every ``close()`` runs on a thread of its own, so a close that hangs fails
the test at its deadline plus :data:`MARGIN` instead of hanging the suite.
The margin is what a loaded 2-core machine may add to ``close()``'s own
deadline (its steps past the deadline never wait: they shut file
descriptors and call back); docs/lifecycle.md states the bound.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import cohrt_sync
from cohrt_sync import _cancel
from tests.adversarial._proc import ServerProcess
from tests.hostile._server import KEY as HOSTILE_KEY
from tests.hostile._server import HostileServer

from .conftest import KEY, client_threads, wait_until

#: Seconds a close() may take past its timeout on a loaded CI machine.
MARGIN = 0.5


@pytest.fixture(scope="module")
def serve() -> Iterator[ServerProcess]:
    """``cohrt-sync serve`` in a child process, shared by this module's tests."""
    with ServerProcess(["--key", KEY, "--provision"]) as proc:
        yield proc


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def frozen(serve: ServerProcess) -> Iterator[None]:
    """The server stopped by SIGSTOP (and stopped for certain) inside; SIGCONT after."""
    os.kill(serve.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _state(serve.pid) == "T", timeout=5)
        yield
    finally:
        os.kill(serve.pid, signal.SIGCONT)


def library_threads() -> List[threading.Thread]:
    """Every thread a client starts: readers, dispatchers, keepalive, handshake watchdogs."""
    return client_threads() + [
        t for t in threading.enumerate() if t.name.startswith("cohrt-sync-handshake-")
    ]


def close_within(close: Callable[[], None], timeout: float) -> float:
    """Run ``close`` on its own thread; its seconds, failing past ``timeout`` + MARGIN."""
    took: List[float] = []

    def run() -> None:
        start = time.monotonic()
        close()
        took.append(time.monotonic() - start)

    closer = threading.Thread(target=run, name="test-closer", daemon=True)
    closer.start()
    closer.join(timeout + MARGIN)
    assert not closer.is_alive(), f"close() still running {timeout + MARGIN}s in ({timeout}s)"
    assert took, "close() raised"
    assert took[0] <= timeout + MARGIN, took[0]
    return took[0]


def in_token_request(ch: cohrt_sync.Channel) -> bool:
    """True while the channel's reader waits on an HTTP answer: a reconnect's token."""
    reader = ch._conn.thread
    return reader is not None and reader.ident in _cancel._IN_USE


def reconnect_into_a_hanging_token_request(chans: List[cohrt_sync.Channel]) -> None:
    """Drop each channel's socket (server frozen): each reconnect's token request hangs."""
    for ch in chans:
        ch._conn.force_reconnect()
    wait_until(lambda: all(in_token_request(ch) for ch in chans), timeout=10)


def writable(sock: Any) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        return bool(selector.select(0))


@pytest.fixture
def client(serve: ServerProcess, make_client: Any) -> cohrt_sync.Client:
    return make_client(serve)  # type: ignore[no-any-return]


def test_client_close_with_connected_channels(serve: ServerProcess,
                                              client: cohrt_sync.Client) -> None:
    # websocket-client's send_close() clears ws.connected, after which
    # abort() does nothing, and shutdown() closes the fd under a reader that
    # sleeps on: only shutting the socket down wakes the reader (issue 25).
    for i in range(4):
        client.subscribe(f"frozen:connected{i}", user_id=f"u{i}")
    with frozen(serve):
        close_within(client.close, 5.0)
        assert not library_threads()


def test_channel_close_alone_honours_its_timeout(serve: ServerProcess,
                                                 client: cohrt_sync.Client) -> None:
    ch = client.subscribe("frozen:alone", user_id="u")
    with frozen(serve):
        close_within(lambda: ch.close(timeout=1.0), 1.0)
        assert ch._conn.thread is not None and not ch._conn.thread.is_alive()
        assert ch._dispatcher.thread is not None and not ch._dispatcher.thread.is_alive()
        assert ch.closed


def test_client_close_with_channels_whose_reconnect_token_request_hangs(
    serve: ServerProcess, client: cohrt_sync.Client
) -> None:
    # The token requests are cut together, at once: ten channels, one after
    # another at 0.5 s each, would be over a 2 s timeout (issue 25).
    chans = [client.subscribe(f"frozen:reconnecting{i}", user_id=f"u{i}") for i in range(10)]
    with frozen(serve):
        reconnect_into_a_hanging_token_request(chans)
        close_within(lambda: client.close(timeout=2.0), 2.0)
        assert not library_threads()


def test_client_close_with_20_channels_mixed_and_a_drop_storm(
    serve: ServerProcess, client: cohrt_sync.Client
) -> None:
    # 8 connected, 8 reconnecting with their token request hanging, 4 caught
    # in a drop storm frozen mid-way (connected, backing off, minting a token
    # or upgrading a socket, whichever each was in).
    chans = [client.subscribe(f"frozen:mixed{i}", user_id=f"u{i}") for i in range(20)]
    reconnecting, stormed = chans[8:16], chans[16:]
    rounds = [0]
    stop = threading.Event()

    def storm() -> None:
        while not stop.wait(0.01):
            for ch in stormed:
                ch._conn.force_reconnect()
            rounds[0] += 1

    stormer = threading.Thread(target=storm, name="test-storm", daemon=True)
    stormer.start()
    try:
        wait_until(lambda: all(ch.reconnects >= 2 for ch in stormed), timeout=10)
        with frozen(serve):
            seen = rounds[0]
            wait_until(lambda: rounds[0] >= seen + 10, timeout=5)  # the storm goes on, frozen
            reconnect_into_a_hanging_token_request(reconnecting)
            stop.set()
            stormer.join(5)
            close_within(client.close, 5.0)
            assert not library_threads()
    finally:
        stop.set()
        stormer.join(5)


def test_client_close_while_a_publish_is_stuck_sending(serve: ServerProcess,
                                                       client: cohrt_sync.Client) -> None:
    # A publish holds the channel's send lock while a frozen peer leaves no
    # room in the socket's buffers: close() must cut it, not wait for the lock.
    ch = client.subscribe("frozen:stuck-publish", user_id="u")
    blob = "x" * 2**20
    outcome: List[BaseException] = []

    def publish() -> None:
        try:
            ch.publish_many([{"blob": blob}] * 32, timeout=30)
        except cohrt_sync.CohrtError as e:
            outcome.append(e)

    with frozen(serve):
        sock = ch._conn._ws.sock
        publisher = threading.Thread(target=publish, name="test-publisher", daemon=True)
        publisher.start()
        wait_until(lambda: not writable(sock), timeout=10)  # the buffers are full
        close_within(client.close, 5.0)
        assert not library_threads()
        publisher.join(MARGIN)
        assert not publisher.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], cohrt_sync.CohrtConnectionError), outcome


def test_close_with_a_live_server_still_sends_the_close_frame(make_client: Any) -> None:
    # The graceful close: the server gets code 1000 and answers, which ends
    # the reader by itself.
    with HostileServer() as hostile:
        client = make_client(hostile, key=HOSTILE_KEY)
        client.subscribe("live:goodbye", user_id="u")
        wait_until(lambda: hostile.sockets)
        (server_side,) = hostile.sockets
        client.close()
        assert not library_threads()
        wait_until(lambda: server_side.closed)
        assert server_side.close_code == 1000
