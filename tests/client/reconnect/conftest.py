"""Fixtures for the reconnect tests: tests/client's local servers, and tests/hostile's server.

The local servers' fixtures come from tests/client/conftest.py (this folder
is inside it); a test that needs a server to misbehave asks for ``hostile``
and builds its clients with ``hostile_client``.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry
from tests.hostile._server import KEY as HOSTILE_KEY
from tests.hostile._server import HostileServer

from ..conftest import (
    FAST_RECONNECT,
    KEY,
    CountingSession,
    Recorder,
    client_threads,
    closing_clients,
    wait_reads,
    wait_until,
)

__all__ = [
    "FAST_RECONNECT",
    "KEY",
    "CountingSession",
    "Recorder",
    "client_threads",
    "wait_reads",
    "wait_until",
]


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    """A correct server until the test turns a knob; stopped at teardown."""
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def hostile_client(hostile: HostileServer) -> Iterator[Callable[..., cohrt_sync.Client]]:
    """Build clients of the hostile server; all closed at teardown, threads checked."""
    retry = Retry(total=2, backoff_factor=0.01, budget=2.0)
    with closing_clients(key=HOSTILE_KEY, base_url=hostile.base_url, retry=retry) as make:
        yield make
