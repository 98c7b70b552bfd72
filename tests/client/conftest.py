"""Fixtures for the client tests: real local servers on port 0, real sockets."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterator, List, Optional

import pytest
import requests

import cohrt_sync
from cohrt_sync._http import make_session
from cohrt_sync.retry import Retry

server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")
LocalServer = server_mod.LocalServer

KEY = "k_test_s3cr3t_value"
#: Reconnect fast in tests; still exponential with jitter.
FAST_RECONNECT = Retry(total=None, backoff_factor=0.05, backoff_max=0.3, jitter=0.5)

_counter = itertools.count()


def client_threads() -> List[threading.Thread]:
    """Threads started by the client (the server's own threads are excluded)."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(
            ("cohrt-sync-reader-", "cohrt-sync-dispatch-", "cohrt-sync-keepalive-")
        )
    ]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until truthy or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_reads(channel: cohrt_sync.Channel, count: int, timeout: float = 10.0) -> None:
    """Wait until ``channel``'s reader has read ``count`` more frames, pings and
    pongs included (each read moves the time of its last read)."""
    seen = {channel._conn._last_rx}

    def read_enough() -> bool:
        seen.add(channel._conn._last_rx)
        return len(seen) > count

    wait_until(read_enough, timeout)


class CountingSession(requests.Session):
    """A real session that records the paths it sent (instrumentation, not a mock)."""

    def __init__(self, rewrite: Any = None) -> None:
        super().__init__()
        for prefix, adapter in make_session().adapters.items():
            self.mount(prefix, adapter)
        self.paths: List[str] = []
        self.lock = threading.Lock()
        self.rewrite = rewrite

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.rewrite is not None:
            url = self.rewrite(url)
        path = url.split("://", 1)[1].split("/", 1)[1]
        params = kwargs.get("params")
        if params:
            path += "?" + urllib.parse.urlencode(params)
        with self.lock:
            self.paths.append(path)
        return super().request(method, url, *args, **kwargs)


class Recorder:
    """A plugin recording every hook call, with helpers to wait on them."""

    def __init__(self) -> None:
        self.events: List[tuple] = []
        self.cond = threading.Condition()

    def _add(self, *event: Any) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def of(self, kind: str) -> List[tuple]:
        with self.cond:
            return [e for e in self.events if e[0] == kind]

    def messages(self, channel: Optional[str] = None) -> List[cohrt_sync.Message]:
        return [e[2] for e in self.of("message") if channel is None or e[1].name == channel]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"condition not met within {timeout}s; events: {self.events[-10:]}"
                    )
                self.cond.wait(remaining)

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        self._add("message", channel, message)

    @cohrt_sync.hookimpl
    def on_join(self, channel: Any, user: Any) -> None:
        self._add("join", channel, user)

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: Any, last_seen: Any) -> None:
        self._add("leave", channel, user, last_seen)

    @cohrt_sync.hookimpl
    def on_dm_request(self, channel: Any, message: Any) -> None:
        self._add("dm_request", channel, message)

    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        self._add("connected", channel)

    @cohrt_sync.hookimpl
    def on_disconnected(self, channel: Any, reason: str) -> None:
        self._add("disconnected", channel, reason)

    @cohrt_sync.hookimpl
    def on_reconnected(self, channel: Any, attempts: int, caught_up: int) -> None:
        self._add("reconnected", channel, attempts, caught_up)

    @cohrt_sync.hookimpl
    def on_published(self, channel: Any, ack: Any, seconds: float) -> None:
        self._add("published", channel, ack, seconds)

    @cohrt_sync.hookimpl
    def on_error(self, channel: Any, error: BaseException) -> None:
        self._add("error", channel, error)

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        self._add("closed", channel)


def _start(**kwargs: Any) -> Any:
    kwargs.setdefault("keys", [KEY])
    kwargs.setdefault("provision", True)
    return LocalServer(**kwargs).start()


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """A shared server whose frames carry ids (tests use unique channel names)."""
    srv = _start()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def server_noids() -> Iterator[Any]:
    """A shared server whose live frames and acks carry no id (like the cloud)."""
    srv = _start(live_ids=False)
    yield srv
    srv.close()


@pytest.fixture(params=[True, False], ids=["ids", "no-ids"])
def any_server(request: pytest.FixtureRequest, server: Any, server_noids: Any) -> Any:
    """Both server modes, for the exactly-once tests."""
    return server if request.param else server_noids


@pytest.fixture
def make_server(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Start a private server (for restarts and clock changes); stopped at teardown."""
    started: List[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("data_dir", tmp_path / f"srv{len(started)}")
        srv = _start(**kwargs)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.close()


@contextlib.contextmanager
def closing_clients(**defaults: Any) -> Iterator[Callable[..., cohrt_sync.Client]]:
    """Build clients (fast reconnects unless ``defaults`` say otherwise); on exit
    all are closed and no client thread may be left running."""
    clients: List[cohrt_sync.Client] = []

    def make(**kwargs: Any) -> cohrt_sync.Client:
        client = cohrt_sync.Client(**{"reconnect_backoff": FAST_RECONNECT, **defaults, **kwargs})
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()
        wait_until(lambda: not client_threads(), timeout=5)


@pytest.fixture
def make_client() -> Iterator[Callable[..., cohrt_sync.Client]]:
    """``make_client(server, **kwargs)``: a client of ``server``, closed at teardown."""
    with closing_clients(key=KEY) as make:
        yield lambda srv, **kwargs: make(**{"base_url": srv.base_url, **kwargs})


@pytest.fixture
def channel_name(request: pytest.FixtureRequest) -> str:
    """A channel name unique to this test."""
    return f"chat:{request.node.name[:80]}_{next(_counter)}"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
