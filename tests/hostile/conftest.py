"""Fixtures for the hostile-server tests: a misbehaving server per test, fast clients."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator, List

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry
from tests.client.conftest import Recorder, client_threads, wait_until

from ._server import KEY, HostileServer

pytest.importorskip("aiohttp", reason="needs the [server] extra")

#: Reconnect fast in tests; still exponential with jitter.
FAST_RECONNECT = Retry(total=None, backoff_factor=0.05, backoff_max=0.3, jitter=0.5)

_counter = itertools.count()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    """A correct server until the test turns a knob; stopped at teardown."""
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def make_client(hostile: HostileServer) -> Iterator[Callable[..., cohrt_sync.Client]]:
    """Build clients of the hostile server; all closed at teardown, threads checked."""
    clients: List[cohrt_sync.Client] = []

    def make(**kwargs: Any) -> cohrt_sync.Client:
        kwargs.setdefault("key", KEY)
        kwargs.setdefault("base_url", hostile.base_url)
        kwargs.setdefault("reconnect_backoff", FAST_RECONNECT)
        kwargs.setdefault("retry", Retry(total=2, backoff_factor=0.01, budget=2.0))
        client = cohrt_sync.Client(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    wait_until(lambda: not client_threads(), timeout=5)


@pytest.fixture
def recorder() -> Recorder:
    """A plugin recording every hook call."""
    return Recorder()


@pytest.fixture
def channel_name() -> str:
    """A channel name unique to this test."""
    return f"chat:hostile_{next(_counter)}"


__all__ = ["FAST_RECONNECT", "HostileServer", "Recorder", "wait_until"]
