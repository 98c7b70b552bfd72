"""Fixtures for the hostile-server tests: a misbehaving server per test, fast clients."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry
from tests.client.conftest import FAST_RECONNECT, Recorder, closing_clients, wait_until

from ._server import KEY, HostileServer

pytest.importorskip("aiohttp", reason="needs the [server] extra")

_counter = itertools.count()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    """A correct server until the test turns a knob; stopped at teardown."""
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def make_client(hostile: HostileServer) -> Iterator[Callable[..., cohrt_sync.Client]]:
    """Build clients of the hostile server; all closed at teardown, threads checked."""
    retry = Retry(total=2, backoff_factor=0.01, budget=2.0)
    with closing_clients(key=KEY, base_url=hostile.base_url, retry=retry) as make:
        yield make


@pytest.fixture
def recorder() -> Recorder:
    """A plugin recording every hook call."""
    return Recorder()


@pytest.fixture
def channel_name() -> str:
    """A channel name unique to this test."""
    return f"chat:hostile_{next(_counter)}"


__all__ = ["FAST_RECONNECT", "HostileServer", "Recorder", "wait_until"]
