"""pytest fixtures giving *your* tests a live local server and a client.

Enabled through the ``pytest11`` entry point once ``cohrt-sync[server]`` is
installed::

    def test_notifies(cohrt_client):
        ch = cohrt_client.subscribe("chat:t", user_id="u")
        ch.publish({"text": "hi"})

The server runs in-process on a free port with a temporary database and a
provisioned key; it is stopped and joined when the session ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import pytest

from .client import Client
from .retry import Retry

if TYPE_CHECKING:
    from .server import LocalServer

__all__ = ["cohrt_client", "cohrt_key", "cohrt_server"]

_KEY = "coh_pytest_key"


@pytest.fixture(scope="session")
def cohrt_key() -> str:
    """The application key the :func:`cohrt_server` fixture accepts (provisioned)."""
    return _KEY


@pytest.fixture(scope="session")
def cohrt_server(cohrt_key: str) -> Iterator[LocalServer]:
    """A running :class:`cohrt_sync.server.LocalServer` for the test session."""
    try:
        from .server import LocalServer
    except ImportError as e:  # pragma: no cover - depends on the install
        pytest.skip(f"cohrt_server needs the server extra (pip install 'cohrt-sync[server]'): {e}")
    srv = LocalServer(keys=[cohrt_key], provision=True, port=0)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def cohrt_client(cohrt_server: Any, cohrt_key: str) -> Iterator[Client]:
    """A :class:`cohrt_sync.Client` on :func:`cohrt_server`, closed after the test."""
    client = Client(
        key=cohrt_key,
        base_url=cohrt_server.base_url,
        reconnect_backoff=Retry(total=None, backoff_factor=0.05, backoff_max=1.0),
    )
    try:
        yield client
    finally:
        client.close()
